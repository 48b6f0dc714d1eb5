# Copyright (c) mmvireid contributors. All rights reserved.
from .stage_ddp import StageDistributedDataParallel, current_optim_wrapper

__all__ = ['StageDistributedDataParallel', 'current_optim_wrapper']
