# CLIP4VI-ReID on the synthetic SYSU-layout toy data with the tiny toy CLIP
# (RN50 layout at width 8, 64x32 input, as the real recipe is RN50;
# pretrained by tools/pretrain_toy_clip.py --arch tiny_rn): all three
# stages (tsg on cached visible features, ife, hsa) and the 10-trial SYSU
# evaluation, in minutes on a CPU.
# Same model class, losses and stage plan as clip4vireid_sysu.py; only the
# architecture, the epochs and the learning rates are scaled down.
_base_ = [
    '_base_/models/clip_vireid_tiny_rn.py',
    '_base_/datasets/toy_sysu_64x32.py',
    '_base_/schedules/clip4vireid_3stage.py',
    '_base_/default_runtime.py',
]

model = dict(
    type='CLIP4VIReID',
    num_classes=43,
    ife_neck=dict(type='IFENeck', hidden_channels=32),
    align_loss=dict(type='CrossModalAlignmentLoss', temperature=1.0,
                    normalize=False, mode='symmetric'),
    # i2t per modality (the base's i2t_loss is one term: dropped), with its
    # 0.1 label smoothing; the infrared term weighted up
    i2t_loss=None,
    i2t_vis_loss=dict(type='ImageTextCELoss', epsilon=0.1),
    i2t_ir_loss=dict(type='ImageTextCELoss', epsilon=0.1, loss_weight=2.0))
train_cfg = dict(
    stages=[
        dict(name='tsg', epochs=10, validate=False,
             feature_cache=dict(pipeline={{_base_.test_pipeline}},
                                batch_size=64, extract_batch_size=64,
                                num_workers=0, modalities=['vis'])),
        dict(name='ife', epochs=30),
        dict(name='hsa', epochs=10),
    ],
    val_interval=5)
optim_wrapper = dict(
    tsg=dict(optimizer=dict(lr=3e-3)),
    ife=dict(optimizer=dict(lr=1e-3)),
    hsa=dict(optimizer=dict(lr=1e-4)))
param_scheduler = dict(
    tsg=[dict(type='TimmCosineLR', t_initial=10, lr_min=1e-5, warmup_t=2,
              warmup_lr_init=3e-4, t_offset=1)],
    ife=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=3),
        dict(type='MultiStepLR', milestones=[24], gamma=0.1, by_epoch=True,
             begin=0, end=30),
    ],
    hsa=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=2),
        dict(type='MultiStepLR', milestones=[7], gamma=0.1, by_epoch=True,
             begin=0, end=10),
    ])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
