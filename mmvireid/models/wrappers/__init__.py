# Copyright (c) mmvireid contributors. All rights reserved.
from .stage_ddp import (StageDistributedDataParallel, current_optim_wrapper,
                        update_params_or_skip)

__all__ = [
    'StageDistributedDataParallel', 'current_optim_wrapper',
    'update_params_or_skip'
]
