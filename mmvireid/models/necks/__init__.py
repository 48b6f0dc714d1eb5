# Copyright (c) mmvireid contributors. All rights reserved.
"""Semantic bridges between text and image features (CSDN SII, ...)."""
__all__ = []
