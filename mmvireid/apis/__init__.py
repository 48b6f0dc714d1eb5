# Copyright (c) mmvireid contributors. All rights reserved.
"""High-level APIs: feature extraction, gallery ranking, ranking images.

``parse_reid_path``, ``protocol_keep_mask``, ``rank_gallery`` and
``PROTOCOLS`` are implemented in :mod:`mmvireid.datasets`,
:mod:`mmvireid.structures` and :mod:`mmvireid.evaluation.functional`, and
re-exported here for the inference API's users.
"""
from mmvireid.datasets import parse_reid_path
from mmvireid.evaluation.functional import rank_gallery
from mmvireid.structures import PROTOCOLS, protocol_keep_mask
from .inferencer import ReIDFeatures, VIReIDInferencer, init_model

__all__ = [
    'VIReIDInferencer', 'ReIDFeatures', 'parse_reid_path', 'init_model',
    'protocol_keep_mask', 'rank_gallery', 'PROTOCOLS'
]
