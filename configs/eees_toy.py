# EEES on the synthetic SYSU-layout toy data: both stages and the 10-trial
# SYSU evaluation in a few minutes on a CPU (bash demo/toy_demo.sh runs all
# of it). Pretrain the toy CLIP, make the data (with one description per
# train image) and train:
#   python tools/pretrain_toy_clip.py --arch tiny_rn \
#       --out data/toy_clip/tiny_rn.pth
#   python tools/dataset_converters/make_toy_vireid.py --layout sysu \
#       --out data/toy_sysu --num-ids 64
#   OMP_NUM_THREADS=1 python tools/train.py configs/eees_toy.py
# (one intra-op thread is much faster on a small, shared CPU.)
# The model of configs/eees_sysu.py (losses, GeM/BNNeck head,
# modality-specific stems) with the tiny toy CLIP of the CLIP-VIReID toy
# (RN50 layout at width 8, one block per stage, 64-d embedding, 64x32
# input; docs/en/user_guides/toy_world.md) and shorter stages. Ablations:
# configs/eees_ablation/.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/toy_sysu_64x32.py',
    '_base_/schedules/eees_2stage.py',
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
    flip_test=False)

# {relative image path: text}; the toy generator writes it (or
# python tools/generate_descriptions.py configs/eees_toy.py --backend
# attributes)
train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))

# shorter stages (lists are replaced whole); the cache extracts in the main
# process with the toy pipeline
train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=10, validate=False,
             feature_cache={{_base_.feature_cache}}),
        dict(name='finetune', epochs=24),
    ],
    val_interval=6)
# Prompt tokens from scratch at 3e-3, the pretrained toy CLIP fine-tuned at
# 1e-3 (chosen on the toy data: configs/eees/README.md).
optim_wrapper = dict(
    prompt=dict(optimizer=dict(lr=3e-3)),
    finetune=dict(optimizer=dict(lr=1e-3)))
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
