# EEES on the CSDN recipe (docs/en/methods/csdn.md), two stages:
#   prompt   — only the ID prompt tokens train, on cached image features;
#   finetune — image encoder + head train, text encoder frozen, with the
#              description losses (ESE, CVSC, CMSP) on top of the baseline.
# Adam 3e-4 in both stages; classifiers at twice the rate when fine-tuning
# (no bias multiplier). Scheduler epochs are relative to their stage.
train_cfg = dict(
    type='MultiStageTrainLoop',
    stages=[
        # the frozen encoder's features of every train image of both
        # modalities, extracted once with the val pipeline (the cache's
        # default pipeline)
        dict(name='prompt', epochs=60, validate=False,
             feature_cache=dict(batch_size=64, extract_batch_size=128,
                                num_workers=4)),
        dict(name='finetune', epochs=120),
    ],
    val_interval=10)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    constructor='StageOptimWrapperConstructor',
    prompt=dict(
        modules=['prompt_learner'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4),
        paramwise_cfg=dict(
            custom_keys={'head.classifiers': dict(lr_mult=2.0)})),
)

param_scheduler = dict(
    # timm cosine stepped with 0-based epochs (CSDN): warm-up 5 epochs from
    # 1e-5, cosine to 1e-6
    prompt=[dict(type='TimmCosineLR', t_initial=None, lr_min=1e-6, warmup_t=5,
                 warmup_lr_init=1e-5, t_offset=0)],
    # WarmupMultiStepLR stepped with 0-based epochs (CSDN): factor 0.01 -> 1
    # over 10 epochs, x0.1 from epochs 40 and 70 (0-based)
    finetune=[
        dict(type='WarmupMultiStepLR', milestones=[40, 70], gamma=0.1,
             warmup_factor=0.01, warmup_iters=10, t_offset=0, by_epoch=True)
    ],
)

# Batch = 8 identities x 4 images x 2 modalities.
auto_scale_lr = dict(base_batch_size=64)
