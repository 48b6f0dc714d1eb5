# EEES on the synthetic SYSU-layout toy data, both stages and the 10-trial
# SYSU evaluation in a few minutes on a CPU. Make the data (it ships
# descriptions.json and attributes.json) with
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
# and train with
#   python tools/train.py configs/eees_toy.py
# Same model class, losses, heads and modality-specific stems as
# configs/eees_sysu.py; the CLIP is a tiny random-init ViT (64-d embedding),
# so the numbers only show that the recipe learns, not what CLIP weights
# bring.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/toy_sysu.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

# The tiny 2-layer ViT of the CLIP-VIReID toy (width 64, 128x64 input); a
# tiny ResNet is ~20x slower on a CPU. The patch convolution is the
# modality-specific stem here.
tiny_clip_arch = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(128, 64), patch_size=16, width=64, layers=2,
        head_width=32),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    num_classes=43,
    # _delete_: a dict arch replaces the base's 'RN50' string
    image_encoder=dict(
        arch=dict(tiny_clip_arch, _delete_=True),
        pretrained=None,
        input_size=(128, 64),
        stride_size=16),
    text_encoder=dict(arch=dict(tiny_clip_arch, _delete_=True),
                      pretrained=None),
    prompt_learner=dict(embed_width=64),
    flip_test=False)

train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))

train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=10, validate=False,
             feature_cache={{_base_.feature_cache}}),
        dict(name='finetune', epochs=20),
    ],
    val_interval=5)
optim_wrapper = dict(
    prompt=dict(optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=1e-3, weight_decay=5e-4),
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
        dict(type='MultiStepLR', milestones=[14], gamma=0.1, by_epoch=True,
             begin=0, end=20),
    ])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
