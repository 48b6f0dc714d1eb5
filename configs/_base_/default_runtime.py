# defaults to use registries in mmvireid
default_scope = 'mmvireid'

# configure default hooks
default_hooks = dict(
    # runtime info (epoch, iter, lr, losses) for the message hub; the losses
    # reach it in one device-to-host copy per log interval instead of one
    # .item() sync per loss per iteration (same logs and checkpoints).
    runtime_info=dict(type='DeferredRuntimeInfoHook'),
    # record the time of every iteration.
    timer=dict(type='IterTimerHook'),
    # print log every 50 iterations.
    logger=dict(type='LoggerHook', interval=50),
    # enable the parameter scheduler.
    param_scheduler=dict(type='ParamSchedulerHook'),
    # save a checkpoint every 10 epochs, keep the best Rank-1 as well;
    # files are written atomically (a kill while saving leaves the previous
    # checkpoint intact) and resumed shapes are checked.
    checkpoint=dict(
        type='AtomicCheckpointHook',
        interval=10,
        max_keep_ckpts=3,
        save_best='reid/Rank-1',
        rule='greater'),
    # set sampler seed in distributed environment.
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# Staged training: StageSwitchHook switches the model and the data between
# the stages listed in train_cfg.stages.
# SyncBuffersHook averages BN running statistics across ranks after every
# epoch (DDP does not broadcast buffers here), so all ranks evaluate and save
# the same model; it does nothing in a single process.
custom_hooks = [dict(type='StageSwitchHook'), dict(type='SyncBuffersHook')]

# DDP for staged models: one optimizer per stage, and every stage leaves the
# other stages' parameters unused. The scope prefix is needed: MMEngine's
# Runner looks the wrapper up in its root registry without the default scope.
model_wrapper_cfg = dict(
    type='mmvireid.StageDistributedDataParallel',
    find_unused_parameters=True)

# configure environment
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1234, deterministic=False)
