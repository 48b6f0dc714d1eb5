# Copyright (c) mmvireid contributors. All rights reserved.
# atomic file I/O lives in mmvireid.utils.fileio; re-exported here because
# tools written against the hooks module import it from here
from mmvireid.utils.fileio import (AtomicLocalBackend, DiskFullError,
                                   atomic_write)
from .checkpoint_hook import AtomicCheckpointHook, CheckpointShapeError
from .runtime_info_hook import DeferredRuntimeInfoHook, NonFiniteLossError
from .stage_switch_hook import StageSwitchHook, enter_stage

__all__ = [
    'StageSwitchHook', 'enter_stage', 'AtomicCheckpointHook',
    'AtomicLocalBackend', 'CheckpointShapeError', 'DiskFullError',
    'atomic_write', 'DeferredRuntimeInfoHook', 'NonFiniteLossError'
]
