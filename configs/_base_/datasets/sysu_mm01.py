# SYSU-MM01 as the VI-ReID reference code uses it: 8 identities x 4 images
# per modality per batch; single-shot all-search evaluation averaged over 10
# gallery draws (indoor: search_mode='indoor'; multi-shot: gallery_mode).
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'SYSUMM01Dataset'
data_root = 'data/sysu_mm01/'

train_dataloader = dict(
    batch_size=64,  # P x K x 2 modalities
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}}))
# The test split lists every IR query and every gallery candidate; the metric
# draws the 10 single-shot galleries exactly as the reference does.
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 search_mode='all', pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='VIReIDMetric', protocol='sysu', num_trials=10,
                     gallery_mode='single')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
