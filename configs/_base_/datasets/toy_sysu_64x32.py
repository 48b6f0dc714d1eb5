# Synthetic data in the SYSU-MM01 layout, made by
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
# Same dataset class, sampler, transforms and metric as sysu_mm01.py; smaller
# images (64x32), batches and no workers, so it trains on two CPU cores.
_base_ = ['./toy_pipelines_64x32.py']
dataset_type = 'SYSUMM01Dataset'
data_root = 'data/toy_sysu/'

train_dataloader = dict(
    batch_size=32,  # P x K x 2 modalities
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=4,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}}))
# The test split lists every IR query and every gallery candidate; the metric
# draws the 10 single-shot galleries exactly as the reference does.
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 search_mode='all', pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='sysu', num_trials=10,
                     gallery_mode='single')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
