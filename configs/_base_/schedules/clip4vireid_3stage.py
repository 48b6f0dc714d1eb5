# CLIP4VI-ReID, three stages (docs/en/methods/clip4vireid.md):
#   tsg — only the ID prompt tokens train, on cached VISIBLE features;
#   ife — image encoder + BNNeck head + IFE neck train, text features frozen;
#   hsa — image encoder + head + prompt tokens (small lr) train together.
# 60 + 80 + 40 epochs: the same prompt budget (60) and image budget (120) as
# the CLIP-VIReID baseline, so the two compare at equal cost.
# Scheduler epochs are relative to their stage (MultiStageTrainLoop).
train_cfg = dict(
    type='MultiStageTrainLoop',
    stages=[
        # the frozen encoder's features of every VISIBLE train image,
        # extracted once with the val pipeline (the cache's default pipeline)
        dict(name='tsg', epochs=60, validate=False,
             feature_cache=dict(batch_size=64, extract_batch_size=128,
                                num_workers=4, modalities=['vis'])),
        dict(name='ife', epochs=80),
        dict(name='hsa', epochs=40),
    ],
    val_interval=10)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    constructor='StageOptimWrapperConstructor',
    # CLIP-ReID stage 1
    tsg=dict(
        modules=['prompt_learner'],
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4)),
    # CLIP-ReID CNN stage 2 (the neck trains with the encoder; with
    # model.ife_neck=None it is an nn.Identity without parameters)
    ife=dict(
        modules=['image_encoder', 'head', 'ife_neck'],
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4),
        # x2 for every parameter named *bias*, as CLIP-ReID
        paramwise_cfg=dict(custom_keys={'bias': dict(lr_mult=2.0)})),
    # Image side at ife's middle lr (after its first decay); the prompts 10x
    # slower (3.5e-6) and keep the tsg weight decay (5e-4 x 0.2 = 1e-4),
    # so HSA refines the text semantics rather than relearning them.
    hsa=dict(
        modules=['image_encoder', 'head', 'prompt_learner'],
        optimizer=dict(type='Adam', lr=3.5e-5, weight_decay=5e-4),
        paramwise_cfg=dict(
            custom_keys={
                'prompt_learner': dict(lr_mult=0.1, decay_mult=0.2),
                'bias': dict(lr_mult=2.0),
            })),
)

param_scheduler = dict(
    # timm CosineLRScheduler as CLIP-ReID steps it: 5 warm-up epochs from
    # 1e-5, cosine to 1e-6, 1-based epochs
    tsg=[dict(type='TimmCosineLR', t_initial=None, lr_min=1e-6, warmup_t=5,
              warmup_lr_init=1e-5, t_offset=1)],
    # CLIP-ReID's stage-2 WarmupMultiStepLR with its step timing
    # (t_offset=1: the first epoch at x0.109, decays in epochs 40 and 70)
    ife=[
        dict(type='WarmupMultiStepLR', milestones=[40, 70], gamma=0.1,
             warmup_factor=0.01, warmup_iters=10, t_offset=1, by_epoch=True)
    ],
    # a fresh Adam: 5 warm-up epochs from x0.1 while its moment estimates
    # settle, then x0.1 at epoch 30
    hsa=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=6),
        dict(type='MultiStepLR', milestones=[30], gamma=0.1, by_epoch=True,
             begin=0, end=40),
    ],
)

# Batch = 8 identities x 4 images x 2 modalities.
auto_scale_lr = dict(base_batch_size=64)
