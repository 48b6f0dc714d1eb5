# CLIP-VIReID on the synthetic SYSU-layout toy data with a tiny random-init
# CLIP: the whole two-stage recipe (prompt learning on cached features, then
# fine-tuning) and the 10-trial SYSU evaluation, in minutes on a CPU.
_base_ = [
    '_base_/models/clip_vireid_tiny_vit.py',
    '_base_/datasets/toy_sysu.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=43)
train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=10, validate=False,
             feature_cache={{_base_.feature_cache}}),
        dict(name='finetune', epochs=20),
    ],
    val_interval=5)
optim_wrapper = dict(
    prompt=dict(optimizer=dict(lr=3e-3)),
    finetune=dict(optimizer=dict(lr=1e-3)))
param_scheduler = dict(
    prompt=[dict(type='TimmCosineLR', t_initial=10, lr_min=1e-5, warmup_t=2,
                 warmup_lr_init=3e-4, t_offset=1)],
    finetune=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=3),
        dict(type='MultiStepLR', milestones=[14], gamma=0.1, by_epoch=True,
             begin=0, end=20),
    ])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
