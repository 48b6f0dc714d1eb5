# Copyright (c) mmvireid contributors. All rights reserved.
from .warmup_cosine_lr import TimmCosineLR, timm_cosine_value

__all__ = ['TimmCosineLR', 'timm_cosine_value']
