# Synthetic data in the LLCM layout, made by
#   python tools/dataset_converters/make_toy_vireid.py --layout llcm \
#       --out data/toy_llcm --num-ids 64
# Same classes and metric as llcm.py at the toy scale (64x32, CPU).
_base_ = ['./toy_pipelines_64x32.py']
dataset_type = 'LLCMDataset'
data_root = 'data/toy_llcm/'

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=4,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='llcm', num_trials=10)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
