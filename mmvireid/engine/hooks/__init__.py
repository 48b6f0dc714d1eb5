# Copyright (c) mmvireid contributors. All rights reserved.
from .checkpoint_hook import (AtomicCheckpointHook, AtomicLocalBackend,
                              CheckpointShapeError, DiskFullError,
                              atomic_write)
from .runtime_info_hook import DeferredRuntimeInfoHook, NonFiniteLossError
from .stage_switch_hook import StageSwitchHook

__all__ = [
    'StageSwitchHook', 'AtomicCheckpointHook', 'AtomicLocalBackend',
    'CheckpointShapeError', 'DiskFullError', 'atomic_write',
    'DeferredRuntimeInfoHook', 'NonFiniteLossError'
]
