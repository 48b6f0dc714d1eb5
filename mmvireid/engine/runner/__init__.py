# Copyright (c) mmvireid contributors. All rights reserved.
from .multi_stage_loop import MultiStageTrainLoop, StageSpec, parse_stages

__all__ = ['MultiStageTrainLoop', 'StageSpec', 'parse_stages']
