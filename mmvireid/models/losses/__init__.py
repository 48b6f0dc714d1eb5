# Copyright (c) mmvireid contributors. All rights reserved.
"""Losses of the CLIP VI-ReID methods, each a module plus a pure function.

Labels and modality ids may be passed on the host while the features are on
a device (the models do so): value checks and index structures (groups,
identities present) are then computed there without a device sync, and only
index tensors are copied over (see :mod:`mmvireid.models.utils.device`).
"""
from .alignment_loss import (CrossModalAlignmentLoss,
                             cross_modal_alignment_loss,
                             identity_text_distributions)
from .cross_entropy_loss import (ImageTextCELoss, LabelSmoothCELoss,
                                 image_text_ce_loss, label_smooth_ce_loss)
from .eees_losses import (CMSPLoss, CVSCLoss, ESELoss, cmsp_loss, cvsc_loss,
                          ese_loss)
from .msel_loss import MSELLoss, msel_loss
from .supcon_loss import SupConLoss, supcon_loss
from .triplet_loss import (HardTripletLoss, WRTTripletLoss,
                           hard_example_mining, hard_triplet_loss,
                           softmax_weights, wrt_triplet_loss)
from .utils import WeightedLoss, euclidean_dist, l2_normalize

__all__ = [
    'SupConLoss', 'HardTripletLoss', 'WRTTripletLoss', 'LabelSmoothCELoss',
    'ImageTextCELoss', 'MSELLoss', 'supcon_loss', 'hard_example_mining',
    'hard_triplet_loss', 'softmax_weights', 'wrt_triplet_loss',
    'label_smooth_ce_loss', 'image_text_ce_loss', 'msel_loss',
    'euclidean_dist', 'l2_normalize', 'WeightedLoss'
]
__all__ += [
    'CrossModalAlignmentLoss', 'cross_modal_alignment_loss',
    'identity_text_distributions'
]
__all__ += [
    'ESELoss', 'CVSCLoss', 'CMSPLoss', 'ese_loss', 'cvsc_loss', 'cmsp_loss'
]
