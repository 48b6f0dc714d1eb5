# Copyright (c) mmvireid contributors. All rights reserved.
from .multi_stage_loop import (STAGE_KEYS, MultiStageTrainLoop, StageSpec,
                               check_resume_plan, parse_stages,
                               shift_stage_schedulers)

__all__ = [
    'MultiStageTrainLoop', 'StageSpec', 'parse_stages',
    'shift_stage_schedulers', 'check_resume_plan', 'STAGE_KEYS'
]
