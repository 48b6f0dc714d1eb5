# LLCM: IR->VIS (DEEN's default: all NIR queries vs a sampled VIS gallery)
# and VIS->IR (all VIS queries vs a sampled NIR gallery; DEEN's literal [2,1]
# via llcm_vis2ir_mode='deen'), 10 gallery draws each. 288x144 like the AGW
# copy in the LLCM repository (DEEN itself tests at 384x144).
_base_ = ['./vireid_pipelines_288x144.py']
dataset_type = 'LLCMDataset'
data_root = 'data/llcm/'
# Decoded-once image cache (mmvireid/datasets/image_cache.py). The first run
# decodes and LANCZOS-resizes every image once into a uint8 .npy under
# <data_root>/cache/ (3.9 GB for the 30,921 training images, ~2 GB for the
# test split).
# Later runs, the feature-cache pass and every DataLoader worker memory-map
# it and run only the rest of the pipeline, bit-identical to decoding each
# time. A changed image, split or pipeline prefix builds a new file; old
# files are never deleted (remove the folder to free the space).
# num_workers: processes decoding the first build. image_cache=None: off.
image_cache = dict(dir='cache', num_workers=8)

train_dataloader = dict(
    batch_size=64,
    # 8 of a 16-core GPU host's cores: a cached train sample costs ~0.3 ms
    # of one core (crop, flip, channel augmentations), so 8 workers give
    # well over 10k images/s, far more than one GPU consumes (decoding and
    # resizing each JPEG costs 1-12 ms); the other cores are left to the
    # main process, pinning and the val workers.
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}},
                 image_cache=image_cache))
val_dataloader = dict(
    # eval-mode features do not depend on the batch: large batches keep the
    # GPU busy (features are extracted under autocast with --amp)
    batch_size=256,
    # The cached test pipeline is a copy and a pack: 4 workers suffice.
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
