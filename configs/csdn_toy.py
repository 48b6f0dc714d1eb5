# CSDN on the synthetic SYSU-layout toy data with the tiny toy CLIP (RN50
# layout at width 8, 64x32 input, layer4 stride 1, pretrained on synthetic
# image-caption pairs by tools/pretrain_toy_clip.py --arch tiny_rn): all
# three stages and the 10-trial SYSU evaluation in a few minutes on a CPU.
# The model of csdn_sysu.py (modality-specific stems, SII fusion, heads,
# losses, quirks, two-view batch) with the tiny CLIP and shorter stages.
_base_ = [
    '_base_/models/csdn_rn50.py',
    '_base_/datasets/toy_sysu_64x32.py',
    '_base_/schedules/csdn_3stage.py',
    '_base_/default_runtime.py',
]

# = tiny_rn_arch of _base_/models/clip_vireid_tiny_rn.py
tiny_clip_arch = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=(64, 32), layers=(1, 1, 1, 1), width=8),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
# the toy CLIP pretrained by tools/pretrain_toy_clip.py --arch tiny_rn
toy_clip_weights = '{{$MMVIREID_TOY_CLIP_DIR:data/toy_clip}}/tiny_rn.pth'
model = dict(
    num_classes=43,
    # _delete_: a dict arch replaces the base's 'RN50' string
    image_encoder=dict(
        arch=dict(tiny_clip_arch, _delete_=True),
        pretrained=toy_clip_weights,
        input_size=(64, 32),
        # NHWC pays off on GPU tensor cores; the toy runs on CPU
        channels_last=False),
    text_encoder=dict(
        arch=dict(tiny_clip_arch, _delete_=True),
        pretrained=toy_clip_weights),
    prompt_learner=dict(embed_width=64),
    # the toy CLIP's text embedding
    fusion=dict(embed_dim=64))

# The two-view train pipeline of _base_/models/csdn_rn50.py at 64x32 (crop
# padding 2, as the toy's one-view pipeline). {{_base_.x}} cannot be
# unpacked with **, so the normalisation is restated.
imagenet_norm = dict(
    norm_mean=[0.485, 0.456, 0.406], norm_std=[0.229, 0.224, 0.225])
csdn_view_augs = [
    dict(type='mmpretrain.RandomCrop', crop_size=(64, 32), padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ChannelRandomErasing', prob=0.5),
]
csdn_train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(32, 64), keep_ratio=False, backend='pillow',
         interpolation='lanczos'),
    dict(type='ModalityDispatch',
         vis=[
             dict(type='KeyMapper',
                  mapping=dict(img='img'),
                  remapping=dict(img='img_view2'),
                  transforms=csdn_view_augs + [
                      dict(type='ChannelExchange', gray=2, **imagenet_norm)
                  ]),
         ] + csdn_view_augs,
         ir=csdn_view_augs + [
             dict(type='ChannelAdapGray', prob=0.5, **imagenet_norm)
         ]),
    dict(type='PackVIReIDInputs', algorithm_keys=['img_view2']),
]
train_dataloader = dict(dataset=dict(pipeline=csdn_train_pipeline))

# every stage shorter (lists are replaced whole); the caches keep the base's
# modes with the extraction in the main process
train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=10, validate=False,
             feature_cache=dict(mode='paired', batch_size=32,
                                drop_last=True)),
        dict(name='fusion', epochs=5, validate=False,
             feature_cache=dict(mode='sampled', batch_size=64,
                                drop_last=True)),
        dict(name='finetune', epochs=20),
    ],
    val_interval=5)
optim_wrapper = dict(
    prompt=dict(optimizer=dict(lr=3e-3)),
    fusion=dict(optimizer=dict(lr=1e-3)),
    finetune=dict(optimizer=dict(lr=1e-3)))
param_scheduler = dict(
    prompt=[dict(type='TimmCosineLR', t_initial=10, lr_min=1e-5, warmup_t=2,
                 warmup_lr_init=3e-4, t_offset=0)],
    fusion=[dict(type='TimmCosineLR', t_initial=5, lr_min=1e-5, warmup_t=1,
                 warmup_lr_init=1e-4, t_offset=0)],
    finetune=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=3),
        dict(type='MultiStepLR', milestones=[14], gamma=0.1, by_epoch=True,
             begin=0, end=20),
    ])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
