# Copyright (c) mmvireid contributors. All rights reserved.
"""Modality and protocol knowledge, in one place.

Imports nothing else of mmvireid, so every room (datasets, models,
evaluation, apis, visualization, tools) can use it without cycles.
"""
from .modality import (DIRECTIONS, IR, IR_ID, MODALITIES, MODALITY_IDS,
                       OTHER_MODALITY, VIS, VIS_ID, check_modality,
                       direction_modalities, modality_id)

__all__ = [
    'VIS', 'IR', 'MODALITIES', 'VIS_ID', 'IR_ID', 'MODALITY_IDS',
    'OTHER_MODALITY', 'DIRECTIONS', 'modality_id', 'check_modality',
    'direction_modalities'
]
