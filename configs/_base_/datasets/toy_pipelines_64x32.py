# The VI-ReID pipelines for the toy data at 64x32 (H x W), downscaled from
# the generated 128x64: same transforms as the real 288x144 ones, smaller
# padding, no workers. A tiny conv net learns the toy identities much faster
# at this size than a tiny ViT at 128x64, for about the same cost.
img_size = (64, 32)  # (H, W)
load_and_resize = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(img_size[1], img_size[0]), keep_ratio=False,
         backend='pillow', interpolation='lanczos'),
]
train_pipeline = load_and_resize + [
    dict(type='mmpretrain.RandomCrop', crop_size=img_size, padding=2),
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
