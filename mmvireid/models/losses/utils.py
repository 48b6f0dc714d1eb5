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
import functools
from typing import Sequence, Union

import torch
from torch import Tensor, nn

__all__ = [
    'euclidean_dist', 'l2_normalize', 'fp32_under_autocast', 'WeightedLoss'
]


def fp32_under_autocast(fn):
    """Run a loss function in float32 when autocast is on.

    Under ``--amp`` the encoders run in bf16/fp16, but logits that go
    through ``exp`` (SupCon, image-text CE, the EEES distributions) and
    distance matrices built as ``|x|^2 + |y|^2 - 2xy`` (triplet, MSEL, CMSP)
    lose too much in half precision: the expansion cancels catastrophically
    near the small distances hard mining picks. The wrapper casts the
    floating-point tensor arguments to float32 and turns autocast off for
    the call; the gradients flow back in the callers' dtype. Without
    autocast it calls ``fn`` unchanged, so fp32 training is bit-identical.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device_type = next(
            (a.device.type for a in args if isinstance(a, Tensor)), 'cpu')
        if not torch.is_autocast_enabled(device_type):
            return fn(*args, **kwargs)

        def cast(value):
            if isinstance(value, Tensor) and value.is_floating_point():
                return value.float()
            return value

        with torch.autocast(device_type, enabled=False):
            return fn(*[cast(a) for a in args],
                      **{k: cast(v)
                         for k, v in kwargs.items()})

    return wrapper


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


@fp32_under_autocast
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


class WeightedLoss(nn.Module):
    """Base of the losses of ``(inputs, labels)`` that carry a
    ``loss_weight``.

    A subclass computes the unweighted loss in :meth:`unweighted`;
    ``forward`` weights it. Given a sequence of inputs (one per head branch,
    say), ``forward`` sums the loss over them and weights the sum once,
    ``w * (a + b)``, as the reference code bases weight a sum over branches
    (``w * a + w * b`` can round differently).

    Args:
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def unweighted(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """The loss of one input, before the weight (override)."""
        raise NotImplementedError

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]],
                labels: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            inputs (Tensor | Sequence[Tensor]): What :meth:`unweighted`
                takes (features or logits, one row per sample), or several
                of them, e.g. one per head branch.
            labels (Tensor): ``[N]`` labels.

        Returns:
            Tensor: A scalar.
        """
        if isinstance(inputs, Tensor):
            return self.loss_weight * self.unweighted(inputs, labels)
        if not inputs:
            raise ValueError(f'{type(self).__name__}: no inputs to compute '
                             'the loss on')
        return self.loss_weight * sum(
            self.unweighted(x, labels) for x in inputs)
