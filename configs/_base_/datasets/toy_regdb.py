# Synthetic data in the RegDB layout, made by
#   python tools/dataset_converters/make_toy_vireid.py --layout regdb \
#       --out data/toy_regdb
# Same classes and metric as regdb.py at the toy scale (64x32, CPU).
_base_ = ['./toy_pipelines_64x32.py']
dataset_type = 'RegDBDataset'
data_root = 'data/toy_regdb/'
trial = 1

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=4,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 trial=trial, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 trial=trial, pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='regdb')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
