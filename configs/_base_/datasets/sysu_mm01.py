# SYSU-MM01 as the VI-ReID reference code uses it: 8 identities x 4 images
# per modality per batch; single-shot all-search evaluation averaged over 10
# gallery draws (indoor: search_mode='indoor'; multi-shot: gallery_mode).
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'SYSUMM01Dataset'
data_root = 'data/sysu_mm01/'
# Decoded-once image cache under <data_root>/cache/, built by 8 processes on
# the first run (docs/en/user_guides/datasets.md); None turns it off.
image_cache = dict(dir='cache', num_workers=8)

train_dataloader = dict(
    batch_size=64,  # P x K x 2 modalities
    # with the image cache, 8 workers outrun one GPU (the cache section of
    # docs/en/user_guides/datasets.md)
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}},
                 image_cache=image_cache))
# The test split lists every IR query and every gallery candidate; the metric
# draws the 10 single-shot galleries exactly as the reference does.
val_dataloader = dict(
    # eval-mode features do not depend on the batch size
    batch_size=256,
    # the cached test pipeline only copies and packs
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 search_mode='all', pipeline={{_base_.test_pipeline}},
                 image_cache=image_cache))
val_evaluator = dict(type='VIReIDMetric', protocol='sysu', num_trials=10,
                     gallery_mode='single')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
