# EEES on the synthetic SYSU-layout toy data: both stages and the 10-trial
# SYSU evaluation in a few minutes on a CPU. Make the data (it ships
# descriptions.json and attributes.json) and train:
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
#   OMP_NUM_THREADS=1 python tools/train.py configs/eees_toy.py
# (one thread per process is much faster on a small, shared CPU.)
# Same model class, losses, GeM/BNNeck head and modality-specific stems as
# configs/eees_sysu.py. The CLIP is a tiny random-init ResNet (the RN50
# layout at width 8, one block per stage, 64-d embedding) on 64x32 inputs,
# so the numbers only show that the recipe learns, not what CLIP weights
# bring. Ablations: configs/eees_ablation/.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/toy_sysu.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

# The toy images (128x64) are resized to 64x32: a conv net learns the toy
# identities much faster than a tiny ViT, and at this size it costs about
# as much.
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

tiny_clip_arch = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=img_size, layers=(1, 1, 1, 1), width=8),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    num_classes=43,
    # _delete_: a dict arch replaces the base's 'RN50' string
    image_encoder=dict(
        arch=dict(tiny_clip_arch, _delete_=True),
        pretrained=None,
        input_size=img_size),
    text_encoder=dict(
        arch=dict(tiny_clip_arch, _delete_=True), pretrained=None),
    prompt_learner=dict(embed_width=64),
    flip_test=False)

# {relative image path: text}; the toy generator writes it (or
# python tools/generate_descriptions.py configs/eees_toy.py)
train_dataloader = dict(
    dataset=dict(descriptions='descriptions.json', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=10, validate=False,
             feature_cache=dict(pipeline=test_pipeline, batch_size=64,
                                extract_batch_size=64, num_workers=0)),
        dict(name='finetune', epochs=24),
    ],
    val_interval=6)
optim_wrapper = dict(
    prompt=dict(optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=3e-3, weight_decay=5e-4),
        # CSDN: classifiers at twice the learning rate
        paramwise_cfg=dict(
            _delete_=True,
            custom_keys={'head.classifiers': dict(lr_mult=2.0)})))
param_scheduler = dict(
    prompt=[dict(type='TimmCosineLR', t_initial=10, lr_min=1e-5, warmup_t=2,
                 warmup_lr_init=3e-4, t_offset=0)],
    finetune=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=3),
        dict(type='MultiStepLR', milestones=[18], gamma=0.1, by_epoch=True,
             begin=0, end=24),
    ])
default_hooks = dict(
    logger=dict(interval=19),
    checkpoint=dict(interval=6, max_keep_ckpts=1))
