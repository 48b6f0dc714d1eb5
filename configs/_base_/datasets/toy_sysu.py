# Synthetic data in the SYSU-MM01 layout, made by
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
# Same dataset class, sampler, transforms and metric as the real SYSU config;
# smaller images (128x64) and batches (4 ids x 4 images per modality) so it
# trains on two CPU cores.
dataset_type = 'SYSUMM01Dataset'
data_root = 'data/toy_sysu/'
img_size = (128, 64)  # (H, W)

load_and_resize = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(img_size[1], img_size[0]), keep_ratio=False,
         backend='pillow', interpolation='lanczos'),
]
train_pipeline = load_and_resize + [
    dict(type='mmpretrain.RandomCrop', crop_size=img_size, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ModalityDispatch',
         vis=[dict(type='ChannelRandomErasing', prob=0.5)],
         ir=[dict(type='ChannelRandomErasing', prob=0.5),
             dict(type='ChannelAdapGray', prob=0.5)]),
    dict(type='PackVIReIDInputs'),
]
test_pipeline = load_and_resize + [dict(type='PackVIReIDInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=4,
                 num_instances=4),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='test',
        search_mode='all', pipeline=test_pipeline))
val_evaluator = dict(type='VIReIDMetric', protocol='sysu', num_trials=10)
test_dataloader = val_dataloader
test_evaluator = val_evaluator

feature_cache = dict(pipeline=test_pipeline, batch_size=64,
                     extract_batch_size=64, num_workers=0)
