# Copyright (c) mmvireid contributors. All rights reserved.
"""Cross-modal alignment of identity-level similarity distributions over text
features (CLIP4VI-ReID's HSA stage, our design:
docs/en/methods/clip4vireid.md)."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmvireid.registry import MODELS
from mmvireid.structures import IR_ID, VIS_ID
from ..utils.device import checks_enabled, to_device
from .utils import fp32_under_autocast

__all__ = [
    'identity_text_distributions', 'cross_modal_alignment_loss',
    'CrossModalAlignmentLoss'
]

_MODES = ('symmetric', 'vis_teacher', 'ir_teacher')


@fp32_under_autocast
def identity_text_distributions(
        img_feats: Tensor,
        text_feats: Tensor,
        labels: Tensor,
        modalities: Tensor,
        temperature: float = 1.0,
        normalize: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Per identity and modality, the mean similarity distribution over text.

    For image :math:`i` the distribution over the :math:`M` text features is
    :math:`p_i = \mathrm{softmax}(v_i T^\top / \tau)`. For identity :math:`y`
    and modality :math:`m`, :math:`q^m_y = \frac{1}{|I^m_y|}
    \sum_{i \in I^m_y} p_i` (the mean of the distributions, not the
    distribution of the mean feature). Only identities with images of both
    modalities are returned.

    The log of the mean is computed as ``logsumexp(log p_i) - log n``, which
    is exact and never takes ``log(0)``.

    Args:
        img_feats (Tensor): Image features, shape (N, D).
        text_feats (Tensor): Text features, shape (M, D).
        labels (Tensor): Identity labels of the images, shape (N, ).
        modalities (Tensor): 0 visible / 1 infrared, shape (N, ).
        temperature (float): :math:`\tau`. Defaults to 1.0.
        normalize (bool): L2-normalise images and texts first (cosine
            similarity); False keeps the raw dot products of the i2t
            classifier. Defaults to False.

    ``labels`` and ``modalities`` are best given on the host (the models
    do): the identity groups are then found there, without device syncs,
    and only their row indices are copied to the features' device.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``log_q_vis`` and ``log_q_ir`` of shape
        (P, M) (log-probabilities), and the ``P`` identities (sorted, on the
        device of ``labels``) they belong to.

    Raises:
        ValueError: On mismatched shapes, unknown modality ids, or when no
            identity has images of both modalities.
    """
    if img_feats.dim() != 2 or text_feats.dim() != 2 or \
            img_feats.size(1) != text_feats.size(1):
        raise ValueError('cross_modal_alignment_loss expects image features '
                         '(N, D) and text features (M, D), got '
                         f'{tuple(img_feats.shape)} and '
                         f'{tuple(text_feats.shape)}.')
    n = img_feats.size(0)
    if labels.shape != (n, ) or modalities.shape != (n, ):
        raise ValueError(
            'cross_modal_alignment_loss expects labels and modalities of '
            f'shape ({n}, ), got {tuple(labels.shape)} and '
            f'{tuple(modalities.shape)}.')
    is_vis, is_ir = modalities == VIS_ID, modalities == IR_ID
    if checks_enabled(modalities) and not bool((is_vis | is_ir).all()):
        raise ValueError('cross_modal_alignment_loss: modalities must be '
                         f'{VIS_ID} (visible) or {IR_ID} (infrared), got '
                         f'values {torch.unique(modalities).tolist()}.')
    if normalize:
        img_feats = F.normalize(img_feats, dim=1)
        text_feats = F.normalize(text_feats, dim=1)
    log_p = F.log_softmax(img_feats @ text_feats.t() / temperature, dim=1)

    # The groups depend on the labels only: found where the labels are
    # (the host), their rows copied to the device in one tensor.
    ids_vis = torch.unique(labels[is_vis])
    ids_ir = torch.unique(labels[is_ir])
    ids = ids_vis[torch.isin(ids_vis, ids_ir)]
    if ids.numel() == 0:
        raise ValueError(
            'cross_modal_alignment_loss: no identity has images of both '
            'modalities in this batch; the alignment needs the cross-modal '
            'P x K batches of CrossModalIdentitySampler.')
    groups = [
        torch.nonzero((labels == pid) & in_modality).squeeze(1)
        for in_modality in (is_vis, is_ir) for pid in ids
    ]
    rows = to_device(torch.cat(groups), log_p.device).split(
        [g.numel() for g in groups])

    def mean_log_prob(group_rows) -> Tensor:
        # log of the mean of the rows' distributions
        return torch.stack([
            torch.logsumexp(log_p[idx], dim=0) - math.log(idx.numel())
            for idx in group_rows
        ])

    num_ids = ids.numel()
    return (mean_log_prob(rows[:num_ids]), mean_log_prob(rows[num_ids:]),
            ids)


def _kl(log_target: Tensor, log_input: Tensor) -> Tensor:
    """``KL(target || input)`` per row, from log-probabilities: (P, )."""
    return (log_target.exp() * (log_target - log_input)).sum(1)


@fp32_under_autocast
def cross_modal_alignment_loss(img_feats: Tensor,
                               text_feats: Tensor,
                               labels: Tensor,
                               modalities: Tensor,
                               temperature: float = 1.0,
                               normalize: bool = False,
                               mode: str = 'symmetric') -> Tensor:
    r"""KL between the visible and infrared text-similarity distributions of
    each identity.

    With :math:`q^{vis}_y, q^{ir}_y` from
    :func:`identity_text_distributions` and :math:`P` identities present in
    both modalities:

    - ``'symmetric'``: :math:`\frac{1}{P}\sum_y \frac{1}{2}
      [KL(q^{vis}_y \| q^{ir}_y) + KL(q^{ir}_y \| q^{vis}_y)]`, gradients
      through both sides;
    - ``'vis_teacher'``: :math:`\frac{1}{P}\sum_y
      KL(\mathrm{sg}(q^{vis}_y) \| q^{ir}_y)` (the visible side, which the
      text was learnt from, is a fixed target; only the infrared side moves);
    - ``'ir_teacher'``: the mirror image.

    It is 0 exactly when both modalities give the same distribution for every
    identity, and positive otherwise.

    Args:
        img_feats (Tensor): Image features, shape (N, D).
        text_feats (Tensor): Text features, shape (M, D).
        labels (Tensor): Identity labels, shape (N, ).
        modalities (Tensor): 0 visible / 1 infrared, shape (N, ).
        temperature (float): Softmax temperature. Defaults to 1.0.
        normalize (bool): Cosine instead of dot-product similarity.
            Defaults to False.
        mode (str): ``'symmetric'``, ``'vis_teacher'`` or ``'ir_teacher'``.
            Defaults to 'symmetric'.

    Returns:
        Tensor: A scalar.
    """
    if mode not in _MODES:
        raise ValueError(f'cross_modal_alignment_loss: mode must be one of '
                         f'{list(_MODES)}, got {mode!r}.')
    log_vis, log_ir, _ = identity_text_distributions(img_feats, text_feats,
                                                     labels, modalities,
                                                     temperature, normalize)
    if mode == 'vis_teacher':
        return _kl(log_vis.detach(), log_ir).mean()
    if mode == 'ir_teacher':
        return _kl(log_ir.detach(), log_vis).mean()
    return 0.5 * (_kl(log_vis, log_ir) + _kl(log_ir, log_vis)).mean()


@MODELS.register_module()
class CrossModalAlignmentLoss(nn.Module):
    """Visible/infrared alignment over the text space, see
    :func:`cross_modal_alignment_loss`.

    Args:
        temperature (float): Softmax temperature. Defaults to 1.0 (the raw
            ``v T^T`` logits of the i2t classifier).
        normalize (bool): Cosine similarity. Defaults to False.
        mode (str): ``'symmetric'``, ``'vis_teacher'`` or ``'ir_teacher'``.
            Defaults to 'symmetric'.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.

    Example:
        >>> loss_fn = CrossModalAlignmentLoss()
        >>> feats, text = torch.randn(8, 16), torch.randn(2, 16)
        >>> labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
        >>> mods = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
        >>> loss = loss_fn(feats, text, labels, mods)
    """

    def __init__(self,
                 temperature: float = 1.0,
                 normalize: bool = False,
                 mode: str = 'symmetric',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError('CrossModalAlignmentLoss: temperature must be '
                             f'> 0, got {temperature}.')
        if mode not in _MODES:
            raise ValueError(f'CrossModalAlignmentLoss: mode must be one of '
                             f'{list(_MODES)}, got {mode!r}.')
        self.temperature = temperature
        self.normalize = normalize
        self.mode = mode
        self.loss_weight = loss_weight

    def forward(self, img_feats: Tensor, text_feats: Tensor, labels: Tensor,
                modalities: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            img_feats (Tensor): Image features, shape (N, D).
            text_feats (Tensor): Text features, shape (M, D).
            labels (Tensor): Identity labels, shape (N, ).
            modalities (Tensor): 0 visible / 1 infrared, shape (N, ).

        Returns:
            Tensor: A scalar.
        """
        return self.loss_weight * cross_modal_alignment_loss(
            img_feats, text_feats, labels, modalities, self.temperature,
            self.normalize, self.mode)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'normalize={self.normalize}, mode={self.mode!r}, '
                f'loss_weight={self.loss_weight}')
