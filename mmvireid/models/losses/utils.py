# Copyright (c) mmvireid contributors. All rights reserved.
"""Distance helpers shared by the metric-learning losses.

Both reference code bases compute euclidean distances through the expansion
``|x|^2 + |y|^2 - 2 x.y`` followed by ``clamp(min=1e-12).sqrt()``, so a
self-distance is about ``1e-6`` rather than 0. They differ in how the cross
term is folded in, which changes the rounding of the near-zero diagonal (and
so the values of losses that read it): CLIP-ReID subtracts an explicit
``2 * x @ y.T`` while CSDN uses a fused ``addmm`` (``beta=1, alpha=-2``).
:func:`euclidean_dist` offers both so each loss can follow its reference.
"""
import torch
from torch import Tensor

__all__ = ['euclidean_dist', 'l2_normalize']


def l2_normalize(x: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """Scale ``x`` to unit L2 norm, the AGW/CLIP-ReID way.

    ``x / (||x|| + eps)``: the epsilon is *added* to the norm, unlike
    :func:`torch.nn.functional.normalize` which clamps the norm from below.
    The two agree except for (near) zero vectors.

    Args:
        x (Tensor): Features, e.g. of shape (N, D).
        dim (int): The dimension to normalise. Defaults to -1.
        eps (float): Added to the norm. Defaults to 1e-12.

    Returns:
        Tensor: Same shape as ``x``.
    """
    return x / (torch.norm(x, 2, dim, keepdim=True).expand_as(x) + eps)


def euclidean_dist(x: Tensor, y: Tensor, fused: bool = False) -> Tensor:
    """Pairwise euclidean distances ``sqrt(clamp(|x|^2 + |y|^2 - 2xy))``.

    Args:
        x (Tensor): Shape (M, D).
        y (Tensor): Shape (N, D).
        fused (bool): If True, fold the cross term in with
            ``torch.addmm(..., beta=1, alpha=-2)`` as CSDN's ``pdist_torch``
            does; otherwise subtract ``2 * x @ y.T`` explicitly as CLIP-ReID's
            ``euclidean_dist`` does. The two differ only in float rounding.
            Defaults to False.

    Returns:
        Tensor: Distances of shape (M, N); entries are at least ``1e-6``
        because the squared distance is clamped at ``1e-12`` before the
        square root (this also keeps the gradient of ``sqrt`` finite).
    """
    if x.dim() != 2 or y.dim() != 2 or x.size(1) != y.size(1):
        raise ValueError('euclidean_dist expects features of shape (M, D) '
                         f'and (N, D), got {tuple(x.shape)} and '
                         f'{tuple(y.shape)}.')
    xx = x.pow(2).sum(dim=1, keepdim=True)  # (M, 1)
    yy = y.pow(2).sum(dim=1, keepdim=True).t()  # (1, N)
    dist = xx + yy
    if fused:
        dist = torch.addmm(dist, x, y.t(), beta=1, alpha=-2)
    else:
        dist = dist - 2 * torch.matmul(x, y.t())
    return dist.clamp(min=1e-12).sqrt()
