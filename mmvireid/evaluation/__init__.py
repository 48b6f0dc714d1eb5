# Copyright (c) mmvireid contributors. All rights reserved.
"""Evaluation: protocol functions (``functional``) and the metric that runs
them inside an MMEngine evaluator (``metrics``)."""
from .functional import (NoValidQueryError, RaggedCMCError, draw_multi_shot,
                         draw_single_shot, eval_llcm, eval_regdb, eval_sysu,
                         group_consecutive, l2_normalize, pairwise_distance,
                         re_ranking)
from .metrics import VIReIDMetric

__all__ = [
    'eval_sysu', 'eval_regdb', 'eval_llcm', 'NoValidQueryError',
    'RaggedCMCError', 'pairwise_distance', 'l2_normalize', 're_ranking',
    'group_consecutive', 'draw_single_shot', 'draw_multi_shot', 'VIReIDMetric'
]
