# Copyright (c) mmvireid contributors. All rights reserved.
"""Visualisation: ranking-list drawing, the test-time ranking hook and the
``rankings.json`` writer.

This package is the location of the ``VISUALIZERS`` / ``VISBACKENDS``
registries; mmengine's own ``Visualizer`` and backends (local, TensorBoard,
W&B) resolve through the parent registries.

``protocol_split`` is :func:`mmvireid.structures.protocol_split`,
re-exported for the hook's users.
"""
from mmvireid.structures import protocol_split
from .ranking_hook import (RankingVisualizationHook,
                           enable_ranking_visualization)
from .ranking_visualizer import GridLayout, RankingLayout, VIReIDVisualizer
from .rankings_file import (RANKING_META_KEYS, RANKINGS_HEADER, ranking_record,
                            write_rankings)

__all__ = [
    'VIReIDVisualizer', 'RankingLayout', 'GridLayout',
    'RankingVisualizationHook', 'enable_ranking_visualization',
    'protocol_split', 'RANKINGS_HEADER', 'RANKING_META_KEYS', 'ranking_record',
    'write_rankings'
]
