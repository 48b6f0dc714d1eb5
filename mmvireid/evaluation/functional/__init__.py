# Copyright (c) mmvireid contributors. All rights reserved.
"""Pure numpy / torch evaluation code (no mmengine): protocol metrics,
distances, re-ranking and gallery ranking.

The per-trial gallery draws live in :mod:`mmvireid.structures` (the
datasets draw with them too) and are re-exported here.
"""
from mmvireid.structures import (draw_multi_shot, draw_single_shot,
                                 group_consecutive)
from .distance import l2_normalize, pairwise_distance
from .ranking import first_correct_rank, rank_gallery
from .rerank import re_ranking
from .vireid_eval import (NoValidQueryError, RaggedCMCError, eval_llcm,
                          eval_regdb, eval_sysu)

__all__ = [
    'eval_sysu', 'eval_regdb', 'eval_llcm', 'NoValidQueryError',
    'RaggedCMCError', 'pairwise_distance', 'l2_normalize', 're_ranking',
    'group_consecutive', 'draw_single_shot', 'draw_multi_shot', 'rank_gallery',
    'first_correct_rank'
]
