# SYSU-MM01, as the VI-ReID reference code (AGW/CAJ/CSDN) uses it:
# 288x144 input, 8 identities x 4 images per modality per batch, single-shot
# all-search evaluation averaged over 10 gallery draws.
dataset_type = 'SYSUMM01Dataset'
data_root = 'data/sysu_mm01/'
img_size = (288, 144)  # (H, W)

# Images are loaded in BGR (OpenMMLab convention); the data preprocessor
# converts to RGB and normalises. The reference resizes every image to 144x288
# with PIL LANCZOS when it builds its .npy cache; we resize on load the same way.
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

train_dataloader = dict(
    # P identities x K images, visible block then infrared block
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='CrossModalIdentitySampler', num_ids=8,
                 num_instances=4),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train',
        pipeline=train_pipeline))

# The test split lists every IR query and every gallery candidate; the metric
# draws the 10 single-shot galleries exactly as the reference does.
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='test',
        search_mode='all', pipeline=test_pipeline))
val_evaluator = dict(type='VIReIDMetric', protocol='sysu', num_trials=10)
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Frozen-encoder feature cache of the prompt stage uses the test pipeline.
feature_cache = dict(pipeline=test_pipeline, batch_size=64,
                     extract_batch_size=128, num_workers=4)
