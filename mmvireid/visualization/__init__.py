# Copyright (c) mmvireid contributors. All rights reserved.
"""Visualizers and backends (the registries' location; mmengine's
``Visualizer`` and its backends are used as they are)."""
__all__ = []
