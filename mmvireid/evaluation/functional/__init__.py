# Copyright (c) mmvireid contributors. All rights reserved.
"""Pure numpy evaluation code (no mmengine): protocol metrics, distances,
re-ranking and the per-trial gallery draws shared with the datasets."""
from .distance import l2_normalize, pairwise_distance
from .gallery_sampling import (draw_multi_shot, draw_single_shot,
                               group_consecutive)
from .rerank import re_ranking
from .vireid_eval import (NoValidQueryError, RaggedCMCError, eval_llcm,
                          eval_regdb, eval_sysu)

__all__ = [
    'eval_sysu', 'eval_regdb', 'eval_llcm', 'NoValidQueryError',
    'RaggedCMCError', 'pairwise_distance', 'l2_normalize', 're_ranking',
    'group_consecutive', 'draw_single_shot', 'draw_multi_shot'
]
