# Copyright (c) mmvireid contributors. All rights reserved.
"""Triplet losses: batch-hard (CLIP-ReID) and weighted-regularised (AGW/CSDN).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmvireid.registry import MODELS
from ..utils.device import checks_enabled, to_device
from .utils import (WeightedLoss, euclidean_dist, fp32_under_autocast,
                    l2_normalize)

__all__ = [
    'hard_example_mining', 'hard_triplet_loss', 'softmax_weights',
    'wrt_triplet_loss', 'HardTripletLoss', 'WRTTripletLoss', 'soft_margin'
]


def _check_feats_labels(name: str, feats: Tensor, labels: Tensor) -> None:
    if feats.dim() != 2:
        raise ValueError(f'{name} expects features of shape (N, D), got '
                         f'{tuple(feats.shape)}.')
    if labels.shape != (feats.size(0), ):
        raise ValueError(f'{name} expects labels of shape ({feats.size(0)}, ) '
                         f'to match the features, got {tuple(labels.shape)}.')


def hard_example_mining(dist_mat: Tensor,
                        labels: Tensor) -> Tuple[Tensor, Tensor]:
    """Hardest positive and hardest negative distance of every anchor.

    The positive set of an anchor includes the anchor itself (its distance is
    about 1e-6, see :func:`~mmvireid.models.losses.utils.euclidean_dist`).

    CLIP-ReID's ``hard_example_mining`` reads the masked entries as an
    ``(N, -1)`` block, which is only right when every identity has the same
    number of samples: otherwise it raises, or - when the count of positives
    happens to divide ``N`` - silently assigns other anchors' distances to a
    row. Here the max/min run over boolean masks, so every layout is mined
    correctly, and for balanced batches the values and gradients equal the
    reference's.

    Args:
        dist_mat (Tensor): Pairwise distances, shape (N, N).
        labels (Tensor): Identity labels, shape (N, ); may be on the host
            while ``dist_mat`` is on a device.

    Returns:
        tuple[Tensor, Tensor]: ``dist_ap`` and ``dist_an``, each (N, ).

    Raises:
        ValueError: If some anchor has no negative (a batch with a single
            identity). Checked on host labels (or with device checks on,
            see :mod:`mmvireid.models.utils.device`); on a device a
            single-identity batch gives ``dist_an = inf``.
    """
    n = dist_mat.size(0)
    if dist_mat.shape != (n, n) or labels.shape != (n, ):
        raise ValueError(
            'hard_example_mining expects an (N, N) distance '
            f'matrix and (N, ) labels, got {tuple(dist_mat.shape)}'
            f' and {tuple(labels.shape)}.')
    # Some anchor lacks a negative exactly when all labels are equal.
    if n and checks_enabled(labels) and bool((labels == labels[0]).all()):
        raise ValueError(
            'Batch-hard triplet mining needs at least two identities in the '
            f'batch, but every sample has label {labels[0].item()}: there is '
            'no negative to mine.')
    labels = to_device(labels, dist_mat.device)
    is_pos = labels.unsqueeze(0) == labels.unsqueeze(1)
    is_neg = ~is_pos
    dist_ap = dist_mat.masked_fill(~is_pos, float('-inf')).max(dim=1)[0]
    dist_an = dist_mat.masked_fill(~is_neg, float('inf')).min(dim=1)[0]
    return dist_ap, dist_an


@fp32_under_autocast
def soft_margin(x: Tensor) -> Tensor:
    r"""Soft-margin loss with target 1: :math:`\mathrm{mean}(\log(1 +
    e^{-x}))`, the value of ``F.soft_margin_loss(x, ones)``.

    Written as ``softplus(-x)`` because torch's ``soft_margin_loss`` forms
    ``exp(-x)`` and overflows to inf (and NaN gradients) for ``x < -88`` in
    float32, e.g. when an untrained encoder puts a negative far closer than
    a positive. Where torch's value is finite the two agree to float
    rounding.

    Args:
        x (Tensor): ``[N]`` margins (negative distance minus positive).
    """
    return F.softplus(-x).mean()


def hard_triplet_loss(feats: Tensor,
                      labels: Tensor,
                      margin: Optional[float] = 0.3,
                      normalize_feature: bool = False,
                      hard_factor: float = 0.0) -> Tensor:
    r"""Batch-hard triplet loss (CLIP-ReID ``TripletLoss``).

    With :math:`d` the euclidean distances (explicit ``- 2 x y^T`` form),
    :math:`d_{ap}(i) = \max_{j: y_j = y_i} d_{ij}` (the anchor included) and
    :math:`d_{an}(i) = \min_{j: y_j \ne y_i} d_{ij}`:

    .. math::

        L = \frac{1}{N} \sum_i \max(0, (1+h) d_{ap}(i) - (1-h) d_{an}(i) + m)

    or, when ``margin`` is None, the soft-margin form

    .. math::

        L = \frac{1}{N} \sum_i \log\big(1 + \exp((1+h) d_{ap}(i)
            - (1-h) d_{an}(i))\big)

    Args:
        feats (Tensor): Features, shape (N, D).
        labels (Tensor): Identity labels, shape (N, ).
        margin (float, optional): The margin :math:`m`; None selects the
            soft margin. Defaults to 0.3.
        normalize_feature (bool): Divide the features by ``||x|| + 1e-12``
            first. Defaults to False.
        hard_factor (float): :math:`h`, scales the mined distances apart.
            Defaults to 0.0.

    Returns:
        Tensor: A scalar.
    """
    _check_feats_labels('hard_triplet_loss', feats, labels)
    if normalize_feature:
        feats = l2_normalize(feats, dim=-1)
    dist_mat = euclidean_dist(feats, feats, fused=False)
    dist_ap, dist_an = hard_example_mining(dist_mat, labels)
    dist_ap = dist_ap * (1.0 + hard_factor)
    dist_an = dist_an * (1.0 - hard_factor)
    target = torch.ones_like(dist_an)
    if margin is None:
        return soft_margin(dist_an - dist_ap)
    return F.margin_ranking_loss(dist_an, dist_ap, target, margin=margin)


def softmax_weights(dist: Tensor,
                    mask: Tensor,
                    masked_max: bool = False) -> Tensor:
    r"""Row-wise softmax of ``dist`` restricted to ``mask`` (AGW style).

    .. math::

        W_{ij} = \frac{\exp(s_{ij} - c_i) M_{ij}}
                      {\sum_k \exp(s_{ik} - c_i) M_{ik} + 10^{-6}}

    Reference behaviour (``masked_max=False``): the shift is
    :math:`c_i = \max_k s_{ik} M_{ik}`, a max over the *whole row* of the
    masked scores, where masked-out entries count as 0. For positive weights
    (:math:`s = d \ge 0`) that equals the masked max. For negative weights
    (:math:`s = -d \le 0`) it is 0, because every row has at least one
    zeroed positive entry (the anchor itself); with large distances all
    :math:`\exp(-d)` then underflow, the ``1e-6`` dominates and the weights
    sum to less than 1. ``masked_max=True`` shifts by the max over the masked
    entries only (0 for a row without any), which keeps the weights a proper
    softmax; the two agree whenever the denominator is much larger than 1e-6.

    Args:
        dist (Tensor): Scores, shape (N, N).
        mask (Tensor): 0/1 float mask of the same shape.
        masked_max (bool): Shift by the masked max. Defaults to False.

    Returns:
        Tensor: Weights of shape (N, N), zero outside ``mask``.
    """
    if masked_max:
        keep = mask > 0
        max_v = dist.masked_fill(~keep, float('-inf')).max(
            dim=1, keepdim=True)[0]
        # A row without any entry in the mask gets all-zero weights anyway;
        # a finite shift avoids inf - inf.
        max_v = torch.where(
            torch.isfinite(max_v), max_v, torch.zeros_like(max_v))
        # Zero the exponent outside the mask: there ``dist - max_v`` can be
        # large and positive, and exp() would give inf * 0 = NaN.
        diff = torch.where(keep, dist - max_v, torch.zeros_like(dist))
    else:
        max_v = torch.max(dist * mask, dim=1, keepdim=True)[0]
        diff = dist - max_v
    exp_diff = torch.exp(diff) * mask
    z = exp_diff.sum(dim=1, keepdim=True) + 1e-6  # avoid division by zero
    return exp_diff / z


@fp32_under_autocast
def wrt_triplet_loss(feats: Tensor,
                     labels: Tensor,
                     normalize_feature: bool = False,
                     fix_negative_max: bool = False) -> Tensor:
    r"""Weighted regularised triplet loss (AGW, CSDN ``TripletLoss_WRT``).

    With :math:`d` the euclidean distances (fused ``addmm`` form),
    :math:`w^p = \mathrm{softmax}(d)` over same-label entries (the anchor
    included) and :math:`w^n = \mathrm{softmax}(-d)` over other-label entries
    (see :func:`softmax_weights`):

    .. math::

        L = \frac{1}{N} \sum_i \log\Big(1 + \exp\big(\sum_j w^p_{ij} d_{ij}
            - \sum_j w^n_{ij} d_{ij}\big)\Big)

    There is no margin. A batch with a single identity gives zero negative
    weights (the closest-negative term is 0) exactly as in the reference.

    Args:
        feats (Tensor): Features, shape (N, D).
        labels (Tensor): Identity labels, shape (N, ).
        normalize_feature (bool): Divide the features by ``||x|| + 1e-12``
            first. Defaults to False.
        fix_negative_max (bool): Shift the negative softmax by the max over
            negatives instead of the reference's whole-row max (which is 0);
            see :func:`softmax_weights`. Defaults to False (reference).

    Returns:
        Tensor: A scalar.
    """
    _check_feats_labels('wrt_triplet_loss', feats, labels)
    labels = to_device(labels, feats.device)
    if normalize_feature:
        feats = l2_normalize(feats, dim=-1)
    dist_mat = euclidean_dist(feats, feats, fused=True)
    is_pos = (labels.unsqueeze(0) == labels.unsqueeze(1)).to(dist_mat.dtype)
    is_neg = 1 - is_pos

    dist_ap = dist_mat * is_pos
    dist_an = dist_mat * is_neg
    weights_ap = softmax_weights(dist_ap, is_pos)
    weights_an = softmax_weights(-dist_an, is_neg, masked_max=fix_negative_max)
    furthest_positive = (dist_ap * weights_ap).sum(dim=1)
    closest_negative = (dist_an * weights_an).sum(dim=1)
    return soft_margin(closest_negative - furthest_positive)


@MODELS.register_module()
class HardTripletLoss(WeightedLoss):
    """Batch-hard triplet loss, see :func:`hard_triplet_loss`; takes one
    ``[N, D]`` feature tensor or several (:class:`WeightedLoss`).

    Args:
        margin (float, optional): Margin; None selects the soft margin
            (CLIP-ReID ``NO_MARGIN=True``). Defaults to 0.3.
        normalize_feature (bool): L2-normalise the features first. Defaults
            to False.
        hard_factor (float): CLIP-ReID's ``hard_factor``. Defaults to 0.0.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 margin: Optional[float] = 0.3,
                 normalize_feature: bool = False,
                 hard_factor: float = 0.0,
                 loss_weight: float = 1.0):
        super().__init__(loss_weight)
        self.margin = margin
        self.normalize_feature = normalize_feature
        self.hard_factor = hard_factor

    def unweighted(self, feats: Tensor, labels: Tensor) -> Tensor:
        """The loss of features ``[N, D]`` and identity labels ``[N]``."""
        return hard_triplet_loss(feats, labels, self.margin,
                                 self.normalize_feature, self.hard_factor)

    def extra_repr(self) -> str:
        return (f'margin={self.margin}, '
                f'normalize_feature={self.normalize_feature}, '
                f'hard_factor={self.hard_factor}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class WRTTripletLoss(WeightedLoss):
    """Weighted regularised triplet loss, see :func:`wrt_triplet_loss`;
    takes one ``[N, D]`` feature tensor or several (:class:`WeightedLoss`).

    Args:
        normalize_feature (bool): L2-normalise the features first. Defaults
            to False.
        fix_negative_max (bool): Use the masked max for the negative softmax
            instead of the reference's whole-row max. Defaults to False.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 normalize_feature: bool = False,
                 fix_negative_max: bool = False,
                 loss_weight: float = 1.0):
        super().__init__(loss_weight)
        self.normalize_feature = normalize_feature
        self.fix_negative_max = fix_negative_max

    def unweighted(self, feats: Tensor, labels: Tensor) -> Tensor:
        """The loss of features ``[N, D]`` and identity labels ``[N]``."""
        return wrt_triplet_loss(feats, labels, self.normalize_feature,
                                self.fix_negative_max)

    def extra_repr(self) -> str:
        return (f'normalize_feature={self.normalize_feature}, '
                f'fix_negative_max={self.fix_negative_max}, '
                f'loss_weight={self.loss_weight}')
