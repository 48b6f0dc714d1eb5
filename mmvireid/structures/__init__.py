# Copyright (c) mmvireid contributors. All rights reserved.
"""Modality and protocol knowledge, in one place.

* :mod:`.modality`: the modality names, their integer ids and the retrieval
  directions;
* :mod:`.protocol`: the test protocols, their options and the gallery keep
  rule;
* :mod:`.gallery_sampling`: the per-trial gallery draws;
* :mod:`.split`: the query and gallery of every direction and trial.

Imports nothing else of mmvireid, so every room (datasets, models,
evaluation, apis, visualization, tools) can use it without cycles.
"""
from .gallery_sampling import (draw_multi_shot, draw_single_shot,
                               group_consecutive)
from .modality import (DIRECTIONS, IR, IR2VIS, IR_ID, MODALITIES, MODALITY_IDS,
                       MODALITY_LABELS, OTHER_MODALITY, VIS, VIS2IR, VIS_ID,
                       check_modality, direction_modalities, modality_id)
from .protocol import (DATASET_PROTOCOLS, GALLERY_MODES, LLCM,
                       LLCM_VIS2IR_MODES, MULTI_SHOT_NUM, PROTOCOL_DIRECTIONS,
                       PROTOCOLS, REGDB, SYSU, check_protocol,
                       check_protocol_options, protocol_drop_keys,
                       protocol_keep_mask)
from .split import ProtocolSplit, protocol_split

__all__ = [
    'VIS', 'IR', 'MODALITIES', 'VIS_ID', 'IR_ID', 'MODALITY_IDS',
    'OTHER_MODALITY', 'MODALITY_LABELS', 'IR2VIS', 'VIS2IR', 'DIRECTIONS',
    'modality_id', 'check_modality', 'direction_modalities', 'SYSU', 'REGDB',
    'LLCM', 'PROTOCOLS', 'DATASET_PROTOCOLS', 'PROTOCOL_DIRECTIONS',
    'GALLERY_MODES', 'MULTI_SHOT_NUM', 'LLCM_VIS2IR_MODES', 'check_protocol',
    'check_protocol_options', 'protocol_drop_keys', 'protocol_keep_mask',
    'group_consecutive', 'draw_single_shot', 'draw_multi_shot',
    'ProtocolSplit', 'protocol_split'
]
