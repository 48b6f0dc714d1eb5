# Copyright (c) mmvireid contributors. All rights reserved.
"""Label-smoothed cross entropy and the image-to-text identity loss."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmvireid.registry import MODELS
from ..utils.device import checks_enabled, to_device
from .utils import WeightedLoss, fp32_under_autocast

__all__ = [
    'label_smooth_ce_loss', 'image_text_ce_loss', 'LabelSmoothCELoss',
    'ImageTextCELoss'
]


def _check_logits_labels(name: str, logits: Tensor, labels: Tensor) -> Tensor:
    """Check shapes and (where free, see :mod:`mmvireid.models.utils.device`)
    the label range; return the labels on the logits' device."""
    if logits.dim() != 2:
        raise ValueError(f'{name} expects logits of shape (N, C), got '
                         f'{tuple(logits.shape)}.')
    if labels.shape != (logits.size(0), ):
        raise ValueError(f'{name} expects labels of shape ({logits.size(0)}, )'
                         f' to match the logits, got {tuple(labels.shape)}.')
    # Out-of-range labels would be a device-side assert on a GPU; checked
    # on the host labels the models pass (or with device checks on).
    if labels.numel() and checks_enabled(labels) and (
            int(labels.min()) < 0 or int(labels.max()) >= logits.size(1)):
        raise ValueError(
            f'{name}: labels must lie in [0, {logits.size(1) - 1}] for '
            f'{logits.size(1)} logit columns, got values from '
            f'{int(labels.min())} to {int(labels.max())}.')
    return to_device(labels, logits.device)


@fp32_under_autocast
def label_smooth_ce_loss(logits: Tensor,
                         labels: Tensor,
                         epsilon: float = 0.1,
                         num_classes: Optional[int] = None) -> Tensor:
    r"""Cross entropy with label smoothing (CLIP-ReID/CSDN
    ``CrossEntropyLabelSmooth``).

    .. math::

        L = \frac{1}{N} \sum_i \sum_c -q_{ic} \log \mathrm{softmax}(z_i)_c,
        \qquad q_{ic} = (1 - \epsilon)\,[c = y_i] + \epsilon / K

    Quirk kept from the reference: :math:`q` is built in float32 whatever the
    logit dtype, so with float64 logits the weights are float32-rounded
    (e.g. ``0.9 + 0.1/K`` is not exact); with float16/bfloat16 logits the
    result is float32 by type promotion. ``epsilon=0`` gives plain cross
    entropy.

    Args:
        logits (Tensor): Shape (N, C).
        labels (Tensor): Class indices in ``[0, C)``, shape (N, ).
        epsilon (float): Smoothing weight. Defaults to 0.1.
        num_classes (int, optional): :math:`K` in ``epsilon / K``. None uses
            the logit width ``C`` (CSDN); CLIP-ReID passes its number of
            classes, which equals ``C`` there. Defaults to None.

    Returns:
        Tensor: A scalar.
    """
    labels = _check_logits_labels('label_smooth_ce_loss', logits, labels)
    num_classes = logits.size(1) if num_classes is None else num_classes
    log_probs = F.log_softmax(logits, dim=1)
    one_hot = torch.zeros(
        logits.shape, dtype=torch.float32, device=logits.device)
    one_hot.scatter_(1, labels.long().unsqueeze(1), 1)
    targets = (1 - epsilon) * one_hot + epsilon / num_classes
    # ``mean(0).sum()`` rather than ``sum(1).mean()`` to round as the
    # reference does.
    return (-targets * log_probs).mean(0).sum()


@fp32_under_autocast
def image_text_ce_loss(img_feats: Tensor,
                       text_feats: Tensor,
                       labels: Tensor,
                       epsilon: float = 0.0,
                       num_classes: Optional[int] = None) -> Tensor:
    r"""Identity cross entropy of image features against class text features.

    .. math::

        L = \mathrm{CE}(F T^\top, y)

    with :math:`F` the image features (N, D) and :math:`T` the text features
    of all C identities (C, D); no normalisation or logit scale, as in
    CLIP-ReID stage 2 and CSDN stage 3. With ``epsilon > 0`` the CE is
    :func:`label_smooth_ce_loss` (CLIP-ReID with ``IF_LABELSMOOTH='on'``).

    Args:
        img_feats (Tensor): Image features, shape (N, D).
        text_feats (Tensor): Text features of every class, shape (C, D).
        labels (Tensor): Class indices in ``[0, C)``, shape (N, ).
        epsilon (float): Label smoothing. Defaults to 0.0 (plain CE).
        num_classes (int, optional): See :func:`label_smooth_ce_loss`.

    Returns:
        Tensor: A scalar.
    """
    if img_feats.dim() != 2 or text_feats.dim() != 2 or \
            img_feats.size(1) != text_feats.size(1):
        raise ValueError('image_text_ce_loss expects image features (N, D) '
                         'and text features (C, D), got '
                         f'{tuple(img_feats.shape)} and '
                         f'{tuple(text_feats.shape)}.')
    logits = img_feats @ text_feats.t()
    if epsilon > 0:
        return label_smooth_ce_loss(logits, labels, epsilon, num_classes)
    labels = _check_logits_labels('image_text_ce_loss', logits, labels)
    return F.cross_entropy(logits, labels.long())


@MODELS.register_module()
class LabelSmoothCELoss(WeightedLoss):
    """Label-smoothed cross entropy, see :func:`label_smooth_ce_loss`; takes
    one ``[N, C]`` logits tensor or several (:class:`WeightedLoss`).

    Args:
        epsilon (float): Smoothing weight. Defaults to 0.1.
        num_classes (int, optional): ``K`` in ``epsilon / K``; None uses the
            logit width. Defaults to None.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 epsilon: float = 0.1,
                 num_classes: Optional[int] = None,
                 loss_weight: float = 1.0):
        super().__init__(loss_weight)
        if not 0 <= epsilon < 1:
            raise ValueError(
                f'LabelSmoothCELoss: epsilon must be in [0, 1), got {epsilon}.'
            )
        self.epsilon = epsilon
        self.num_classes = num_classes

    def unweighted(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss of logits ``[N, C]`` and labels ``[N]``."""
        return label_smooth_ce_loss(logits, labels, self.epsilon,
                                    self.num_classes)

    def extra_repr(self) -> str:
        return (f'epsilon={self.epsilon}, num_classes={self.num_classes}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class ImageTextCELoss(nn.Module):
    """Image-to-text identity loss, see :func:`image_text_ce_loss`.

    Args:
        epsilon (float): Label smoothing; 0 is plain cross entropy.
            Defaults to 0.0.
        num_classes (int, optional): ``K`` for label smoothing. Defaults to
            None (the number of text features).
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 epsilon: float = 0.0,
                 num_classes: Optional[int] = None,
                 loss_weight: float = 1.0):
        super().__init__()
        if not 0 <= epsilon < 1:
            raise ValueError(
                f'ImageTextCELoss: epsilon must be in [0, 1), got {epsilon}.')
        self.epsilon = epsilon
        self.num_classes = num_classes
        self.loss_weight = loss_weight

    def forward(self, img_feats: Tensor, text_feats: Tensor,
                labels: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            img_feats (Tensor): Image features, shape (N, D).
            text_feats (Tensor): Text features of all classes, shape (C, D).
            labels (Tensor): Shape (N, ).

        Returns:
            Tensor: A scalar.
        """
        return self.loss_weight * image_text_ce_loss(
            img_feats, text_feats, labels, self.epsilon, self.num_classes)

    def extra_repr(self) -> str:
        return (f'epsilon={self.epsilon}, num_classes={self.num_classes}, '
                f'loss_weight={self.loss_weight}')
