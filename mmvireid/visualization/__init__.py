# Copyright (c) mmvireid contributors. All rights reserved.
"""Visualisation: ranking-list drawing and the test-time ranking hook.

This package is the location of the ``VISUALIZERS`` / ``VISBACKENDS``
registries; mmengine's own ``Visualizer`` and backends (local, TensorBoard,
W&B) resolve through the parent registries.
"""
from .ranking_hook import (RankingVisualizationHook,
                           enable_ranking_visualization, protocol_split)
from .ranking_visualizer import GridLayout, RankingLayout, VIReIDVisualizer

__all__ = [
    'VIReIDVisualizer', 'RankingLayout', 'GridLayout',
    'RankingVisualizationHook', 'enable_ranking_visualization',
    'protocol_split'
]
