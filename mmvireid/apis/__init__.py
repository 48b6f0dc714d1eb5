# Copyright (c) mmvireid contributors. All rights reserved.
"""High-level APIs: feature extraction, gallery ranking, ranking images."""
from .inferencer import (ReIDFeatures, VIReIDInferencer, init_model,
                         parse_reid_path)
from .ranking import PROTOCOLS, protocol_keep_mask, rank_gallery

__all__ = [
    'VIReIDInferencer', 'ReIDFeatures', 'parse_reid_path', 'init_model',
    'protocol_keep_mask', 'rank_gallery', 'PROTOCOLS'
]
