# Copyright (c) mmvireid contributors. All rights reserved.
"""Data samplers."""
from .cross_modal_identity_sampler import CrossModalIdentitySampler

__all__ = ['CrossModalIdentitySampler']
