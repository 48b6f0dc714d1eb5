# Copyright (c) mmvireid contributors. All rights reserved.
from .stage_optim_wrapper_constructor import (StageOptimWrapperConstructor,
                                              select_modules)

__all__ = ['StageOptimWrapperConstructor', 'select_modules']
