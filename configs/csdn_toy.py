# CSDN on the synthetic SYSU-layout toy data with the tiny toy CLIP (RN50
# layout at width 8, 64x32 input, layer4 stride 1, pretrained on synthetic
# image-caption pairs by tools/pretrain_toy_clip.py --arch tiny_rn): all
# three stages and the 10-trial SYSU evaluation in a few minutes on a CPU.
# The ModifiedResNet follows the real recipe (csdn_sysu.py is RN50), and its
# modality-specific stems are copies of conv1..avgpool as there. Heads,
# losses, quirks and the two-view batch are the CSDN defaults of the model
# (as configs/_base_/models/csdn_rn50.py).
_base_ = [
    '_base_/models/clip_vireid_tiny_rn.py',
    '_base_/datasets/toy_sysu_64x32.py',
    '_base_/schedules/csdn_3stage.py',
    '_base_/default_runtime.py',
]

clip_arch = {{_base_.tiny_rn_arch}}
model = dict(
    _delete_=True,
    type='CSDN',
    num_classes=43,
    data_preprocessor=dict(
        type='VIReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    image_encoder=dict(
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained={{_base_.toy_clip_weights}},
        input_size=(64, 32),
        last_stride=1,
        # NHWC pays off on GPU tensor cores; the toy runs on CPU
        channels_last=False,
        modality_specific_stem=True),
    text_encoder=dict(
        type='CLIPTextEncoder',
        arch=clip_arch,
        pretrained={{_base_.toy_clip_weights}}),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=64),
    msel_loss=dict(type='MSELLoss', num_pos=4))

imagenet_norm = dict(
    norm_mean=[0.485, 0.456, 0.406], norm_std=[0.229, 0.224, 0.225])
view_augs = [
    dict(type='mmpretrain.RandomCrop', crop_size=(64, 32), padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ChannelRandomErasing', prob=0.5),
]
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile', imdecode_backend='pillow'),
        dict(type='Resize', scale=(32, 64), keep_ratio=False,
             backend='pillow', interpolation='lanczos'),
        dict(type='ModalityDispatch',
             vis=[
                 dict(type='KeyMapper',
                      mapping=dict(img='img'),
                      remapping=dict(img='img_view2'),
                      transforms=view_augs + [
                          dict(type='ChannelExchange', gray=2,
                               **imagenet_norm)
                      ]),
             ] + view_augs,
             ir=view_augs + [
                 dict(type='ChannelAdapGray', prob=0.5, **imagenet_norm)
             ]),
        dict(type='PackVIReIDInputs', algorithm_keys=['img_view2']),
    ]))

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
