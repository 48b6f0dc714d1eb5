# Copyright (c) mmvireid contributors. All rights reserved.
from .vireid_metric import VIReIDMetric

__all__ = ['VIReIDMetric']
