# Copyright (c) mmvireid contributors. All rights reserved.
"""Semantic bridges between text and image features (CSDN SII, ...)."""
from .ife_neck import IFENeck
from .sii_fusion import SIIFusion

__all__ = []
__all__ += ['IFENeck']
__all__ += ['SIIFusion']
