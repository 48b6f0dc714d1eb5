# Copyright (c) mmvireid contributors. All rights reserved.
from .bnneck_head import BNNeckHead, GeMPooling

__all__ = ['BNNeckHead', 'GeMPooling']
