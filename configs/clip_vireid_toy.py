# CLIP-VIReID on the synthetic SYSU-layout toy data with the tiny toy CLIP
# (RN50 layout, width 8, 64x32 input; pretrained on synthetic image-caption
# pairs by tools/pretrain_toy_clip.py, docs/en/user_guides/toy_world.md):
# the whole two-stage recipe (prompt learning on cached features, then
# fine-tuning) and the 10-trial SYSU evaluation in a few minutes on a CPU.
# Make the weights and data first:
#   python tools/pretrain_toy_clip.py --arch tiny_rn \
#       --out data/toy_clip/tiny_rn.pth
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
_base_ = [
    '_base_/models/clip_vireid_tiny_rn.py',
    '_base_/datasets/toy_sysu_64x32.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=43)
# shorter stages (lists are replaced whole); the cache extracts in the main
# process with the toy pipeline
train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=5, validate=False,
             feature_cache={{_base_.feature_cache}}),
        dict(name='finetune', epochs=35),
    ],
    val_interval=10)
# Prompt tokens from scratch at 3e-3, the pretrained toy CLIP fine-tuned at
# 3e-4 (chosen on the toy data: configs/clip_vireid/README.md), the
# classifiers at twice the rate as in CSDN (no x2 on biases).
optim_wrapper = dict(
    prompt=dict(optimizer=dict(lr=3e-3)),
    finetune=dict(
        optimizer=dict(lr=3e-4),
        paramwise_cfg=dict(
            _delete_=True,
            custom_keys={'head.classifiers': dict(lr_mult=2.0)})))
param_scheduler = dict(
    prompt=[dict(type='TimmCosineLR', t_initial=5, lr_min=1e-5, warmup_t=1,
                 warmup_lr_init=3e-4, t_offset=1)],
    finetune=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=3),
        dict(type='MultiStepLR', milestones=[28], gamma=0.1, by_epoch=True,
             begin=0, end=35),
    ])
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=10, max_keep_ckpts=2))
