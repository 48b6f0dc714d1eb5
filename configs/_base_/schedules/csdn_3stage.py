# The three stages of CSDN's main.py (docs/en/methods/csdn.md):
#   prompt   — the two prompt learners, on paired cached features;
#   fusion   — the SII fusion, on cached features of both modalities (the
#              reference runs it for stage1_train_epochs = 60 epochs);
#   finetune — image encoder (both stems, shared body, attention pool) and
#              the GeM/BN heads, with the frozen fused text.
# Scheduler epochs are relative to their stage (MultiStageTrainLoop).
train_cfg = dict(
    type='MultiStageTrainLoop',
    stages=[
        # one identity-sampler draw, extracted with the test pipeline
        # (val_dataloader's); batches of 32 (visible, infrared) pairs, the
        # last incomplete batch dropped (i_ter = num_image // batch)
        dict(name='prompt', epochs=60, validate=False,
             feature_cache=dict(mode='paired', batch_size=32, drop_last=True,
                                num_workers=4)),
        # a new draw, both modalities shuffled together, batches of 64
        dict(name='fusion', epochs=60, validate=False,
             feature_cache=dict(mode='sampled', batch_size=64,
                                drop_last=True, num_workers=4)),
        dict(name='finetune', epochs=120),
    ],
    # the reference evaluates after every epoch and keeps the best Rank-1
    val_interval=1)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    constructor='StageOptimWrapperConstructor',
    prompt=dict(
        modules=['prompt_learner_vis', 'prompt_learner_ir'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=1e-4)),
    fusion=dict(
        modules=['fusion'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=1e-4)),
    finetune=dict(
        modules=['image_encoder', 'head'],
        optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4),
        # the reference doubles the rate of every 'classifier' parameter:
        # GeM p, both BNs and both linear layers
        paramwise_cfg=dict(custom_keys={'head.': dict(lr_mult=2.0)})),
)

# timm CosineLRScheduler stepped with 0-based epochs (step(current_epoch)):
# 5 warm-up epochs from 1e-5, cosine to 1e-6 over the stage (t_initial=None:
# the stage length, 60 epochs, filled in by MultiStageTrainLoop).
cosine_lr = dict(
    type='TimmCosineLR', t_initial=None, lr_min=1e-6, warmup_t=5,
    warmup_lr_init=1e-5, t_offset=0)
param_scheduler = dict(
    prompt=[cosine_lr],
    fusion=[cosine_lr],
    # the reference's WarmupMultiStepLR(milestones=[40, 70], gamma=0.1,
    # warmup_factor=0.01, warmup_iters=10), stepped with the 0-based epoch
    # before each epoch (t_offset=0): x(0.01 + 0.99 e / 10) for e < 10, x0.1
    # from epoch 40, x0.01 from 70, computed as the reference does (the
    # same rates to the last bit, tests/test_models/
    # test_reference_parity_csdn.py)
    finetune=[
        dict(type='WarmupMultiStepLR', milestones=[40, 70], gamma=0.1,
             warmup_factor=0.01, warmup_iters=10, t_offset=0, by_epoch=True),
    ],
)

# Batch = 8 identities x 4 images x 2 modalities (+ 32 second views).
auto_scale_lr = dict(base_batch_size=64)
