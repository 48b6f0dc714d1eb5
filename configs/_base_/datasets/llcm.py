# LLCM: IR->VIS (DEEN's default: all NIR queries vs a sampled VIS gallery)
# and VIS->IR (all VIS queries vs a sampled NIR gallery; DEEN's literal [2,1]
# via llcm_vis2ir_mode='deen'), 10 gallery draws each. 288x144 like the AGW
# copy in the LLCM repository (DEEN itself tests at 384x144).
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'LLCMDataset'
data_root = 'data/llcm/'
# Decoded-once image cache under <data_root>/cache/, built by 8 processes on
# the first run (docs/en/user_guides/datasets.md); None turns it off.
image_cache = dict(dir='cache', num_workers=8)

train_dataloader = dict(
    batch_size=64,
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
val_dataloader = dict(
    # eval-mode features do not depend on the batch size
    batch_size=256,
    # the cached test pipeline only copies and packs
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline={{_base_.test_pipeline}},
                 image_cache=image_cache))
val_evaluator = dict(type='VIReIDMetric', protocol='llcm', num_trials=10)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
