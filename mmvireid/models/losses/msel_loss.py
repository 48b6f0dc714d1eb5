# Copyright (c) mmvireid contributors. All rights reserved.
"""Modality-shared enhancement loss (PMT, as used by CSDN)."""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmvireid.registry import MODELS
from ..utils.device import to_device
from .utils import WeightedLoss, euclidean_dist, fp32_under_autocast

__all__ = ['msel_loss', 'MSELLoss']


@fp32_under_autocast
def msel_loss(feats: Tensor,
              labels: Tensor,
              num_pos: int = 4,
              feat_norm: bool = False) -> Tensor:
    r"""Modality-shared enhancement loss (CSDN ``tools/MSEL.py``).

    The batch is ``[visible block; infrared block]`` of ``N`` rows each, laid
    out by :class:`~mmvireid.datasets.CrossModalIdentitySampler` so that row
    ``i`` of both blocks has the same identity. With :math:`D` the euclidean
    distances (fused ``addmm`` form) and :math:`S_{ij} = [y_i = y_j]` over the
    first ``N`` labels:

    .. math::

        \mathrm{intra}^v_i &= \mathrm{mean}\big(\mathrm{top}_{K-1}
            (D^{vv}_{i\cdot} \odot S_{i\cdot})\big), \qquad
        \mathrm{cross}^v_i = \frac{\sum_j S_{ij} D^{vi}_{ij}}{\sum_j S_{ij}}

        L &= \tfrac12\Big(\mathrm{mean}_i(\mathrm{cross}^v_i -
            \mathrm{intra}^v_i)^2 + \mathrm{mean}_i(\mathrm{cross}^r_i -
            \mathrm{intra}^r_i)^2\Big)

    with the infrared terms built the same way from :math:`D^{rr}` and
    :math:`D^{rv}`, and :math:`K` = ``num_pos``. Taking the ``K - 1`` largest
    masked entries is meant to drop the anchor's own ~1e-6 self-distance, so
    ``num_pos`` must equal the real number of images per identity and
    modality: if it is larger, self-distances and masked zeros enter the mean
    (as in the reference).

    Only the **first half of** ``labels`` is read; it is assumed to describe
    the infrared half position for position (the reference ignores the
    infrared labels too). The reference reads the cross-modal positives as an
    ``(N, -1)`` block, which needs the same count for every identity; the
    masked mean used here equals it then and stays correct otherwise.

    Args:
        feats (Tensor): Features ``[vis; ir]``, shape (2N, D).
        labels (Tensor): Labels, shape (2N, ).
        num_pos (int): Images per identity and modality, K. Defaults to 4.
        feat_norm (bool): Apply :func:`torch.nn.functional.normalize` first
            (CSDN ``feat_norm='yes'``). Defaults to False.

    Returns:
        Tensor: A scalar.
    """
    if feats.dim() != 2:
        raise ValueError('msel_loss expects features of shape (2N, D), got '
                         f'{tuple(feats.shape)}.')
    if labels.shape != (feats.size(0), ):
        raise ValueError(f'msel_loss expects labels of shape ({feats.size(0)}'
                         f', ) to match the features, got '
                         f'{tuple(labels.shape)}.')
    if feats.size(0) % 2 != 0:
        raise ValueError(
            'msel_loss expects a batch of [visible; infrared] halves of equal '
            f'size, got an odd batch size {feats.size(0)}.')
    n = feats.size(0) // 2
    if num_pos - 1 > n:
        raise ValueError(
            f'msel_loss: num_pos - 1 = {num_pos - 1} exceeds the {n} samples '
            'per modality in the batch; num_pos must be the number of images '
            'per identity and modality.')
    if feat_norm:
        feats = F.normalize(feats, p=2, dim=-1)

    target = to_device(labels[:n], feats.device)
    dist_mat = euclidean_dist(feats, feats, fused=True)
    dist_intra_vis = dist_mat[:n, :n]
    dist_cross_vis = dist_mat[:n, n:]
    dist_intra_ir = dist_mat[n:, n:]
    dist_cross_ir = dist_mat[n:, :n]

    is_pos = target.unsqueeze(0) == target.unsqueeze(1)
    num_same = is_pos.sum(dim=1).to(dist_mat.dtype)

    def intra_mean(dist: Tensor) -> Tensor:
        top, _ = (is_pos * dist).topk(
            num_pos - 1, dim=1, largest=True, sorted=False)
        return top.mean(dim=1)

    def cross_mean(dist: Tensor) -> Tensor:
        return (is_pos * dist).sum(dim=1) / num_same

    loss_vis = torch.pow(
        cross_mean(dist_cross_vis) - intra_mean(dist_intra_vis), 2).mean()
    loss_ir = torch.pow(
        cross_mean(dist_cross_ir) - intra_mean(dist_intra_ir), 2).mean()
    return (loss_vis + loss_ir) / 2


@MODELS.register_module()
class MSELLoss(WeightedLoss):
    """Modality-shared enhancement loss, see :func:`msel_loss`; takes one
    ``[vis; ir]`` feature tensor or several (:class:`WeightedLoss`).

    Args:
        num_pos (int): Images per identity and modality in the batch (the
            sampler's ``num_instances``). Defaults to 4.
        feat_norm (bool): L2-normalise the features first. Defaults to False.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 num_pos: int = 4,
                 feat_norm: bool = False,
                 loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if not isinstance(num_pos, int) or num_pos < 2:
            raise ValueError('MSELLoss: num_pos must be an int >= 2 (the '
                             'intra term averages the num_pos - 1 farthest '
                             f'same-identity samples), got {num_pos!r}.')
        self.num_pos = num_pos
        self.feat_norm = feat_norm

    def unweighted(self, feats: Tensor, labels: Tensor) -> Tensor:
        """The loss of features ``[vis; ir]`` ``[2N, D]`` and labels
        ``[2N]`` (only the first N are read)."""
        return msel_loss(feats, labels, self.num_pos, self.feat_norm)

    def extra_repr(self) -> str:
        return (f'num_pos={self.num_pos}, feat_norm={self.feat_norm}, '
                f'loss_weight={self.loss_weight}')
