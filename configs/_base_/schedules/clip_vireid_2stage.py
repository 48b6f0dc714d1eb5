# Two stages as CLIP-ReID's CNN recipe (configs/person/cnn_clipreid.yml):
#   prompt   — only the ID prompt tokens train, on cached image features;
#   finetune — image encoder + BNNeck head train, text features frozen.
# Scheduler epochs are relative to their stage (MultiStageTrainLoop).
train_cfg = dict(
    type='MultiStageTrainLoop',
    stages=[
        # the frozen encoder's features of every train image, extracted
        # once with the val/test pipeline (the cache's default pipeline)
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
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4),
        # CLIP-ReID doubles the LR of every parameter whose name contains
        # "bias" (BIAS_LR_FACTOR 2, WEIGHT_DECAY_BIAS = WEIGHT_DECAY), norm
        # biases and attention in_proj_bias included; mmengine's
        # bias_lr_mult would skip those.
        paramwise_cfg=dict(custom_keys={'bias': dict(lr_mult=2.0)})),
)

param_scheduler = dict(
    # timm CosineLRScheduler as CLIP-ReID steps it: 5 warm-up epochs from
    # 1e-5, cosine to 1e-6 over the stage (t_initial=None: the stage length,
    # 60 epochs), 1-based epochs
    prompt=[dict(type='TimmCosineLR', t_initial=None, lr_min=1e-6,
                 warmup_t=5, warmup_lr_init=1e-5, t_offset=1)],
    # CLIP-ReID's WarmupMultiStepLR, stepped once when built and again
    # before every epoch (t_offset=1): the first epoch runs at x0.109, the
    # warm-up ends in epoch 10, the decays hit epochs 40 and 70 (1-based).
    finetune=[
        dict(type='WarmupMultiStepLR', milestones=[40, 70], gamma=0.1,
             warmup_factor=0.01, warmup_iters=10, t_offset=1, by_epoch=True)
    ],
)

# Batch = 8 identities x 4 images x 2 modalities.
auto_scale_lr = dict(base_batch_size=64)
