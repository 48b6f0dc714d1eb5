# The VI-ReID pipelines at the toy data's 128x64 (H x W): same transforms as
# the real 288x144 ones, smaller padding, no workers (CPU demo and tests).
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

feature_cache = dict(pipeline=test_pipeline, batch_size=64,
                     extract_batch_size=64, num_workers=0)
