# Copyright (c) mmvireid contributors. All rights reserved.
from .timm_cosine_lr import TimmCosineLR, timm_cosine_value
from .warmup_multistep_lr import WarmupMultiStepLR, warmup_multistep_factor

__all__ = [
    'TimmCosineLR', 'timm_cosine_value', 'WarmupMultiStepLR',
    'warmup_multistep_factor'
]
