# The VI-ReID data pipelines of the AGW/CAJ/CSDN reference code at 288x144.
# Images are loaded in BGR (OpenMMLab convention); the data preprocessor
# converts to RGB and normalises. The reference resizes every image to
# 144x288 (W x H) with PIL LANCZOS when loading; we resize on load the same way.
img_size = (288, 144)  # (H, W)
load_and_resize = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(img_size[1], img_size[0]), keep_ratio=False,
         backend='pillow', interpolation='lanczos'),
]
train_pipeline = load_and_resize + [
    dict(type='mmpretrain.RandomCrop', crop_size=img_size, padding=10),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ModalityDispatch',
         vis=[dict(type='ChannelRandomErasing', prob=0.5)],
         ir=[dict(type='ChannelRandomErasing', prob=0.5),
             dict(type='ChannelAdapGray', prob=0.5)]),
    dict(type='PackVIReIDInputs'),
]
test_pipeline = load_and_resize + [dict(type='PackVIReIDInputs')]

# A prompt stage's feature cache with this test pipeline named explicitly
# (feature_cache={{_base_.feature_cache}}); the caches of the schedule bases
# leave the pipeline out and so use val_dataloader's, the same one.
feature_cache = dict(pipeline=test_pipeline, batch_size=64,
                     extract_batch_size=128, num_workers=4)
