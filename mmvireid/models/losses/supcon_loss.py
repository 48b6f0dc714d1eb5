# Copyright (c) mmvireid contributors. All rights reserved.
"""Supervised contrastive loss between two feature sets (CLIP-ReID stage 1)."""
import torch
from torch import Tensor, nn

from mmvireid.registry import MODELS
from ..utils.device import checks_enabled, to_device
from .utils import fp32_under_autocast

__all__ = ['supcon_loss', 'SupConLoss']


@fp32_under_autocast
def supcon_loss(feats_a: Tensor,
                feats_b: Tensor,
                labels_a: Tensor,
                labels_b: Tensor,
                temperature: float = 1.0) -> Tensor:
    r"""Supervised contrastive loss of the rows of ``feats_a`` against
    ``feats_b``.

    .. math::

        L = -\frac{1}{M} \sum_i \frac{1}{|P(i)|} \sum_{j \in P(i)}
            \log \frac{\exp(a_i \cdot b_j / \tau)}
                      {\sum_k \exp(a_i \cdot b_k / \tau)},
        \qquad P(i) = \{j : y^b_j = y^a_i\}

    This is CLIP-ReID's ``SupConLoss`` (CSDN ships the same code): no feature
    normalisation happens inside, and the softmax runs over *all* columns of
    ``feats_b``. Image-to-text is ``supcon_loss(img, txt, y, y)`` and
    text-to-image ``supcon_loss(txt, img, y, y)``.

    Args:
        feats_a (Tensor): Anchor features, shape (M, D).
        feats_b (Tensor): Contrast features, shape (N, D).
        labels_a (Tensor): Identity labels of ``feats_a``, shape (M, ).
        labels_b (Tensor): Identity labels of ``feats_b``, shape (N, ).
            Both may be on the host while the features are on a device
            (checked there, then copied without blocking).
        temperature (float): Divides the logits. Defaults to 1.0.

    Returns:
        Tensor: A scalar.

    Raises:
        ValueError: On mismatched shapes, or if some anchor label has no
            positive in ``labels_b`` (the reference returns NaN there; this
            check runs on host labels, or with device checks on).
    """
    if feats_a.dim() != 2 or feats_b.dim() != 2 or \
            feats_a.size(1) != feats_b.size(1):
        raise ValueError('supcon_loss expects features of shape (M, D) and '
                         f'(N, D), got {tuple(feats_a.shape)} and '
                         f'{tuple(feats_b.shape)}.')
    if labels_a.shape != (feats_a.size(0), ) or \
            labels_b.shape != (feats_b.size(0), ):
        raise ValueError('supcon_loss expects one label per feature row, got '
                         f'labels_a {tuple(labels_a.shape)} for '
                         f'{feats_a.size(0)} rows and labels_b '
                         f'{tuple(labels_b.shape)} for {feats_b.size(0)} '
                         'rows.')
    # Every anchor needs a positive. The check reads label values, so it
    # runs only where that costs no device sync (host labels, as the models
    # pass them; see mmvireid.models.utils.device).
    if checks_enabled(labels_a, labels_b):
        has_pos = torch.isin(labels_a, labels_b)
        if not bool(has_pos.all()):
            missing = torch.unique(labels_a[~has_pos]).tolist()
            raise ValueError(
                f'supcon_loss: anchor labels {missing} have no positive '
                'among labels_b, so their mean log-probability is undefined '
                '(NaN in the reference). Every label of labels_a must occur '
                'in labels_b.')
    labels_a = to_device(labels_a, feats_a.device)
    labels_b = to_device(labels_b, feats_a.device)
    # The reference builds the mask in float32 whatever the feature dtype;
    # 0/1 are exact in any dtype, so only the output dtype under AMP depends
    # on it, and we keep it for the same promotion behaviour.
    mask = torch.eq(labels_a.unsqueeze(1), labels_b.unsqueeze(0)).float()
    num_pos = mask.sum(1)

    logits = torch.matmul(feats_a, feats_b.t()) / temperature
    # Subtracting the (detached) row maximum changes nothing mathematically
    # and keeps exp() from overflowing.
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
    log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / num_pos
    return -mean_log_prob_pos.mean()


@MODELS.register_module()
class SupConLoss(nn.Module):
    """Supervised contrastive loss, see :func:`supcon_loss`.

    Args:
        temperature (float): Divides the logits. Defaults to 1.0 (CLIP-ReID
            and CSDN).
        loss_weight (float): Multiplies the loss. Defaults to 1.0.

    Example:
        >>> loss_fn = SupConLoss()
        >>> img, txt = torch.randn(8, 16), torch.randn(8, 16)
        >>> y = torch.arange(4).repeat_interleave(2)
        >>> loss = loss_fn(img, txt, y, y) + loss_fn(txt, img, y, y)
    """

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'SupConLoss: temperature must be > 0, got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, feats_a: Tensor, feats_b: Tensor, labels_a: Tensor,
                labels_b: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            feats_a (Tensor): Anchor features, shape (M, D).
            feats_b (Tensor): Contrast features, shape (N, D).
            labels_a (Tensor): Labels of ``feats_a``, shape (M, ).
            labels_b (Tensor): Labels of ``feats_b``, shape (N, ).

        Returns:
            Tensor: A scalar.
        """
        return self.loss_weight * supcon_loss(feats_a, feats_b, labels_a,
                                              labels_b, self.temperature)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}')
