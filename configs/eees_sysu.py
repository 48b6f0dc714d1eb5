# EEES on SYSU-MM01 (all-search, single-shot, 10 trials): OpenAI CLIP RN50,
# 288x144, modality-specific stems; prompt learning (60 epochs) then
# fine-tuning with ID + triplet + i2t + ESE + CVSC + CMSP (120 epochs), on the
# CSDN recipe (optimisers, schedules, batch of 8 ids x 4 images x 2
# modalities). Needs the dataset in data/sysu_mm01/ and its descriptions:
#   python tools/generate_descriptions.py configs/eees_sysu.py \
#       --backend llava
# See docs/en/methods/eees.md.
_base_ = [
    '_base_/models/eees_rn50.py',
    '_base_/datasets/sysu_mm01.py',
    '_base_/schedules/clip_vireid_2stage.py',
    '_base_/default_runtime.py',
]

model = dict(num_classes=395)
# {relative image path: text} for every train image, relative to data_root
train_dataloader = dict(dataset=dict(descriptions='descriptions.json'))

train_cfg = dict(stages=[
    dict(name='prompt', epochs=60, validate=False,
         feature_cache={{_base_.feature_cache}}),
    dict(name='finetune', epochs=120),
])

# CSDN: Adam 3e-4 in both stages; classifiers at twice the rate when
# fine-tuning (no bias multiplier).
optim_wrapper = dict(
    prompt=dict(optimizer=dict(type='Adam', lr=3e-4, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4),
        paramwise_cfg=dict(
            _delete_=True,
            custom_keys={'head.classifiers': dict(lr_mult=2.0)})))
param_scheduler = dict(
    # timm cosine stepped with 0-based epochs (CSDN): warm-up 5 epochs from
    # 1e-5, cosine to 1e-6
    prompt=[dict(type='TimmCosineLR', t_initial=60, lr_min=1e-6, warmup_t=5,
                 warmup_lr_init=1e-5, t_offset=0)],
    # WarmupMultiStepLR: factor 0.01 -> 1 over 10 epochs, x0.1 at 40 and 70
    finetune=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
             end=11),
        dict(type='MultiStepLR', milestones=[40, 70], gamma=0.1,
             by_epoch=True, begin=0, end=120),
    ])
