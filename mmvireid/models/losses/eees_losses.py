# Copyright (c) mmvireid contributors. All rights reserved.
"""The image-description losses of EEES (docs/en/methods/eees.md): ESE
(Explicit Semantics Embedding), CVSC (Cross-View Semantics Compensation)
and CMSP (Cross-Modality Semantics Purification), the abstract's names.

EEES has no public code; these are our formulations of the three modules its
abstract names, each documented with its formula below. All three take

* ``img_feats`` ``v [B, D]``: one image feature per sample (EEES uses the
  projected CLIP feature, whose dimension is the text embedding's);
* ``text_feats`` ``e [B, D]``: the feature of *that image's own* description
  (row ``i`` describes image ``i``; infrared images carry infrared-prompt
  descriptions, which name no colour);
* ``labels`` ``y [B]`` and ``modalities`` ``m [B]`` (0 visible, 1 infrared).

Features are L2-normalised inside (``x̂ = x / ||x||``), so every similarity
is a cosine. None of the losses assumes the sampler's P x K layout: groups
(identity, modality) are found from the labels, so any batch composition is
valid; terms whose group is missing from the batch are skipped.

The groups depend on the labels and modalities only. Given on the host (as
the models pass them), they are found there and only index tensors are
copied to the features' device, so no loss waits for the GPU; the values are
those of the same computation done on the device.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmvireid.registry import MODELS
from mmvireid.structures import IR_ID, VIS_ID
from ..utils.device import checks_enabled, to_device
from .supcon_loss import supcon_loss
from .utils import fp32_under_autocast

__all__ = [
    'ese_loss', 'cvsc_loss', 'cmsp_loss', 'ESELoss', 'CVSCLoss', 'CMSPLoss'
]


def _check_inputs(name: str,
                  img_feats: Tensor,
                  text_feats: Tensor,
                  labels: Tensor,
                  modalities: Optional[Tensor] = None) -> None:
    if img_feats.dim() != 2 or img_feats.shape != text_feats.shape:
        raise ValueError(
            f'{name} expects image and description features of the same '
            f'shape (B, D), row i describing image i; got '
            f'{tuple(img_feats.shape)} and {tuple(text_feats.shape)}.')
    batch = img_feats.size(0)
    if labels.shape != (batch, ):
        raise ValueError(f'{name} expects labels of shape ({batch}, ), got '
                         f'{tuple(labels.shape)}.')
    if modalities is not None:
        if modalities.shape != (batch, ):
            raise ValueError(f'{name} expects modalities of shape ({batch}, '
                             f'), got {tuple(modalities.shape)}.')
        if checks_enabled(modalities):
            bad = set(torch.unique(modalities).tolist()) - {VIS_ID, IR_ID}
            if bad:
                raise ValueError(f'{name}: modalities must be {VIS_ID} '
                                 f'(visible) or {IR_ID} (infrared), got '
                                 f'{sorted(bad)}.')


def _group_ids(labels: Tensor,
               modalities: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Index every sample's (identity, modality) group, on the device of
    ``labels`` (the host, where this costs no sync).

    Returns:
        tuple: ``group [B]`` (group index of each sample, 0..G-1),
        ``group_label [G]``, ``group_modality [G]`` and ``group_size [G]``.
    """
    key = labels.long() * 2 + modalities.long()
    uniq, group = torch.unique(key, return_inverse=True)
    sizes = torch.bincount(group, minlength=uniq.numel())
    return group, uniq // 2, uniq % 2, sizes


def _group_mean(x: Tensor, group: Tensor, sizes: Tensor) -> Tensor:
    """Mean of the rows of ``x`` [B, D] per group: ``[G, D]``.

    ``group`` and ``sizes`` (from :func:`_group_ids`) must be on ``x``'s
    device; the sizes come precomputed because ``bincount`` on a GPU reads
    the indices back to the host.
    """
    sums = x.new_zeros(sizes.numel(), x.size(1)).index_add_(0, group, x)
    return sums / sizes.to(x.dtype).unsqueeze(1)


# --------------------------------------------------------------------- ESE
@fp32_under_autocast
def ese_loss(img_feats: Tensor,
             text_feats: Tensor,
             labels: Tensor,
             modalities: Optional[Tensor] = None,
             temperature: float = 0.07,
             symmetric: bool = True,
             cross_modal_positives: bool = True) -> Tensor:
    r"""Explicit Semantics Embedding (ESE): image <-> description SupCon.

    With cosine similarities of L2-normalised features and positives chosen
    by identity (multi-positive, so the ``K`` views of an identity and their
    descriptions are all positives of each other):

    .. math::

        L_{i2t} &= -\frac{1}{B}\sum_i \frac{1}{|P(i)|}\sum_{j\in P(i)}
            \log\frac{\exp(\hat v_i\cdot\hat e_j/\tau)}
                     {\sum_{k=1}^{B}\exp(\hat v_i\cdot\hat e_k/\tau)}

        L_{t2i} &= \text{the same with } \hat v \text{ and } \hat e
            \text{ swapped}, \qquad
        L = \tfrac12 (L_{i2t} + L_{t2i})

    ``P(i) = {j : y_j = y_i}``; with ``cross_modal_positives=False`` also
    ``m_j = m_i`` (an infrared image then only pulls towards infrared
    descriptions). ``P(i)`` always holds ``i`` itself, the image's own
    description. Both modalities are in the batch: a visible image is
    contrasted with every description of the batch, infrared ones included.

    Args:
        img_feats (Tensor): Image features ``v``, shape (B, D).
        text_feats (Tensor): Description features ``e``, shape (B, D).
        labels (Tensor): Identities, shape (B, ).
        modalities (Tensor, optional): 0/1 per sample, shape (B, ); needed
            when ``cross_modal_positives`` is False.
        temperature (float): :math:`\tau`. Defaults to 0.07 (CLIP's init).
        symmetric (bool): Add the description-to-image direction.
            Defaults to True.
        cross_modal_positives (bool): Same-identity descriptions of the
            other modality are positives too. Defaults to True.

    Returns:
        Tensor: A scalar.
    """
    _check_inputs('ese_loss', img_feats, text_feats, labels, modalities)
    if not cross_modal_positives:
        if modalities is None:
            raise ValueError('ese_loss: cross_modal_positives=False needs '
                             'the modalities of the samples.')
        # one "label" per (identity, modality): positives share both
        labels = labels.long() * 2 + modalities.long()
    v = F.normalize(img_feats, dim=1)
    e = F.normalize(text_feats, dim=1)
    loss = supcon_loss(v, e, labels, labels, temperature)
    if symmetric:
        loss = (loss + supcon_loss(e, v, labels, labels, temperature)) / 2
    return loss


# -------------------------------------------------------------------- CVSC
@fp32_under_autocast
def cvsc_loss(img_feats: Tensor,
              text_feats: Tensor,
              labels: Tensor,
              modalities: Tensor,
              temperature: float = 0.1,
              distill_weight: float = 1.0,
              contrast_weight: float = 1.0) -> Tensor:
    r"""Cross-View Semantics Compensation (CVSC): multi-view matching
    distilled to single views.

    Groups ``g = (p, m)`` are the identities of the batch in each modality.
    The multi-view representations are the re-normalised means of the
    normalised features of the group's ``K`` images and ``K`` descriptions:

    .. math::

        \bar V_g = \mathrm{norm}\Big(\frac1K\sum_{i\in g}\hat v_i\Big),
        \qquad
        \bar E_g = \mathrm{norm}\Big(\frac1K\sum_{i\in g}\hat e_i\Big)

    **Many-to-many matching, distilled.** For image ``i`` of group
    ``g = (p, m)``, ``G_m`` the groups of modality ``m`` (images match the
    descriptions of their own modality, as in ESE's pairing), the teacher is
    the multi-view pair distribution and the student the single-view one:

    .. math::

        t_{i,g'} = \mathrm{softmax}_{g'\in G_m}
            \big(\mathrm{sg}[\bar V_g]\cdot\bar E_{g'}/\tau\big), \quad
        s_{i,g'} = \mathrm{softmax}_{g'\in G_m}
            \big(\hat v_i\cdot\bar E_{g'}/\tau\big), \quad
        L_{kd} = \frac1B\sum_i \mathrm{KL}(t_i \,\|\, s_i)

    (``sg`` = stop-gradient: the teacher is detached.)

    **Identity-level contrast** between the multi-view representations of
    all groups (both modalities), positives by identity:
    :math:`L_{con} = \tfrac12[\mathrm{SupCon}_\tau(\bar V, \bar E) +
    \mathrm{SupCon}_\tau(\bar E, \bar V)]` (see :func:`supcon_loss`).

    .. math::

        L = w_{kd} L_{kd} + w_{con} L_{con}

    With ``K = 1`` the teacher equals the student and :math:`L_{kd} = 0`.

    Args:
        img_feats (Tensor): Image features ``v``, shape (B, D).
        text_feats (Tensor): Description features ``e``, shape (B, D).
        labels (Tensor): Identities, shape (B, ).
        modalities (Tensor): 0 visible / 1 infrared, shape (B, ).
        temperature (float): :math:`\tau` of both terms. Defaults to 0.1.
        distill_weight (float): :math:`w_{kd}`. Defaults to 1.0.
        contrast_weight (float): :math:`w_{con}`. Defaults to 1.0.

    Returns:
        Tensor: A scalar.
    """
    _check_inputs('cvsc_loss', img_feats, text_feats, labels, modalities)
    v = F.normalize(img_feats, dim=1)
    e = F.normalize(text_feats, dim=1)
    group, group_label, group_mod, sizes = _group_ids(labels, modalities)
    device = v.device
    group, sizes = to_device(group, device), to_device(sizes, device)
    v_bar = F.normalize(_group_mean(v, group, sizes), dim=1)
    e_bar = F.normalize(_group_mean(e, group, sizes), dim=1)

    # Both [B, G]; columns of the other modality are masked out of the
    # softmax, so each row is a distribution over G_m.
    same_mod = to_device(
        modalities.long().unsqueeze(1) == group_mod.unsqueeze(0), device)
    neg_inf = torch.finfo(v.dtype).min
    teacher_logits = (v_bar.detach()[group] @ e_bar.t()) / temperature
    student_logits = (v @ e_bar.t()) / temperature
    teacher_logp = F.log_softmax(
        teacher_logits.masked_fill(~same_mod, neg_inf), dim=1)
    student_logp = F.log_softmax(
        student_logits.masked_fill(~same_mod, neg_inf), dim=1)
    teacher_p = teacher_logp.exp()
    # Masked columns have p = 0; where() keeps 0 * (-inf-ish) out of the sum.
    kl = torch.where(same_mod, teacher_p * (teacher_logp - student_logp),
                     torch.zeros_like(teacher_p)).sum(1)
    loss_kd = kl.mean()

    loss_con = (
        supcon_loss(v_bar, e_bar, group_label, group_label, temperature) +
        supcon_loss(e_bar, v_bar, group_label, group_label, temperature)) / 2
    return distill_weight * loss_kd + contrast_weight * loss_con


# -------------------------------------------------------------------- CMSP
CMSP_ANCHORS = ('text', 'image', 'both')
CMSP_LEVELS = ('sample', 'identity')


def _cmsp_gaps(dist: Tensor,
               same_id: Tensor,
               same_mod: Tensor,
               dim: int,
               detach_intra: bool = True) -> Tensor:
    """Per-anchor ``d_inter - d_intra`` along ``dim`` of ``dist`` [B, B]
    (the masks on ``dist``'s device); meaningful for the anchors that have
    both kinds of pairs only (see :func:`_cmsp_valid`). With
    ``detach_intra`` the intra-modality distance is a constant target."""
    intra = same_id & same_mod
    inter = same_id & ~same_mod
    n_intra = intra.sum(dim).to(dist.dtype)
    n_inter = inter.sum(dim).to(dist.dtype)
    intra_dist = dist.detach() if detach_intra else dist
    d_intra = (intra_dist * intra).sum(dim) / n_intra.clamp(min=1)
    d_inter = (dist * inter).sum(dim) / n_inter.clamp(min=1)
    return d_inter - d_intra


def _cmsp_valid(same_id: Tensor, same_mod: Tensor, dim: int) -> Tensor:
    """``[B]`` mask of the anchors (along ``dim``) whose identity has
    images (or descriptions) of both modalities in the batch."""
    return (same_id & same_mod).any(dim) & (same_id & ~same_mod).any(dim)


@fp32_under_autocast
def cmsp_loss(img_feats: Tensor,
              text_feats: Tensor,
              labels: Tensor,
              modalities: Tensor,
              anchor: str = 'both',
              level: str = 'sample',
              detach_intra: bool = True) -> Tensor:
    r"""Cross-Modality Semantics Purification: inter-modality
    image-description distances should come close to intra-modality ones.

    Pair distance :math:`d(v, e) = 1 - \hat v\cdot\hat e`. For an identity
    ``p``, intra-modality pairs are ``(v_vis, e_vis)`` and ``(v_ir, e_ir)``,
    inter-modality pairs ``(v_ir, e_vis)`` and ``(v_vis, e_ir)``. A visible
    description names colours an infrared image cannot show, so the gap
    between the two kinds of pairs measures modality-specific ("noisy")
    semantics; squaring it (MSEL-like form) removes it from the image
    features (the text encoder is frozen).

    **Anchors.** ``'text'``: a description ``e_i`` compares the images of
    its identity in the other modality with those in its own,
    :math:`g_i = \bar d(V^{p,\bar m}, e_i) - \bar d(V^{p,m}, e_i)`, i.e.
    :math:`d(v_{ir}, e_{vis}) - d(v_{vis}, e_{vis})` and
    :math:`d(v_{vis}, e_{ir}) - d(v_{ir}, e_{ir})`. ``'image'``: an image
    ``v_i`` compares the descriptions of its identity in the other modality
    with those in its own, :math:`g_i = \bar d(v_i, E^{p,\bar m}) - \bar
    d(v_i, E^{p,m})` (a visible image should be as close to the colourless
    infrared description as to its own). ``'both'`` averages the two
    losses. :math:`\bar d(V, e)` is the mean distance over the same-identity
    samples of that modality in the batch.

    **Level** (how individual and identity-mean features enter).
    ``'sample'``: every anchor sample gives its own squared gap,
    :math:`L = \mathrm{mean}_i\, g_i^2`. ``'identity'``: the gaps are first
    averaged over the anchors of each (identity, modality) group, then
    squared, :math:`L = \mathrm{mean}_{(p,m)} (\mathrm{mean}_{i\in(p,m)}
    g_i)^2`. Because ``d`` is affine in each feature, the group-averaged
    gap equals the gap between the mean pairwise distances of the groups,
    i.e. the distances of identity-mean (unnormalised) features:
    :math:`1 - \bar{\hat v}\cdot\bar{\hat e}`. The sample level also
    penalises views that disagree with each other; the identity level only
    the identity's average.

    **The intra-modality distance is the target.** By default it is
    detached (``sg``), :math:`g_i = \bar d_{inter} - \mathrm{sg}[\bar
    d_{intra}]`: the loss moves the inter-modality pairs towards the
    intra-modality ones and never the reverse. Without the stop-gradient
    (``detach_intra=False``, the earlier behaviour) the gap can also close
    by pushing an image *away* from its own description, which works
    against ESE.

    Anchors whose identity lacks the other modality in the batch are
    skipped; if none is left the loss is 0 (and still has a graph).

    Args:
        img_feats (Tensor): Image features ``v``, shape (B, D).
        text_feats (Tensor): Description features ``e``, shape (B, D).
        labels (Tensor): Identities, shape (B, ).
        modalities (Tensor): 0 visible / 1 infrared, shape (B, ).
        anchor (str): ``'text'``, ``'image'`` or ``'both'``.
            Defaults to 'both'.
        level (str): ``'sample'`` or ``'identity'``. Defaults to 'sample'.
        detach_intra (bool): Treat the intra-modality distances as a
            constant target. Defaults to True.

    Returns:
        Tensor: A scalar.
    """
    if anchor not in CMSP_ANCHORS:
        raise ValueError(f'cmsp_loss: anchor must be one of {CMSP_ANCHORS}, '
                         f'got {anchor!r}.')
    if level not in CMSP_LEVELS:
        raise ValueError(f'cmsp_loss: level must be one of {CMSP_LEVELS}, '
                         f'got {level!r}.')
    _check_inputs('cmsp_loss', img_feats, text_feats, labels, modalities)
    v = F.normalize(img_feats, dim=1)
    e = F.normalize(text_feats, dim=1)
    dist = 1 - v @ e.t()  # [B images, B descriptions]
    device = dist.device
    # Structure on the labels' device (the host), then copied.
    same_id = labels.unsqueeze(1) == labels.unsqueeze(0)
    same_mod = modalities.unsqueeze(1) == modalities.unsqueeze(0)
    group, _, _, sizes = _group_ids(labels, modalities)
    same_id_d, same_mod_d = to_device(same_id, device), to_device(
        same_mod, device)
    group_d, sizes_d = to_device(group, device), to_device(sizes, device)

    def reduce(gaps: Tensor, valid: Tensor) -> Tensor:
        valid_idx = torch.nonzero(valid).squeeze(1)
        if not valid_idx.numel():
            return dist.sum() * 0
        if level == 'sample':
            return gaps[to_device(valid_idx, device)].pow(2).mean()
        # A group's anchors are all valid or all invalid (same identity).
        keep = to_device(torch.unique(group[valid_idx]), device)
        means = _group_mean(gaps.unsqueeze(1), group_d, sizes_d)[keep, 0]
        return means.pow(2).mean()

    losses = []
    for dim, kind in ((0, 'text'), (1, 'image')):
        # dim 0: columns, one description each; dim 1: rows, one image each
        if anchor in (kind, 'both'):
            losses.append(
                reduce(
                    _cmsp_gaps(dist, same_id_d, same_mod_d, dim=dim,
                               detach_intra=detach_intra),
                    _cmsp_valid(same_id, same_mod, dim=dim)))
    return sum(losses) / len(losses)


# ----------------------------------------------------------------- modules
@MODELS.register_module()
class ESELoss(nn.Module):
    """Explicit Semantics Embedding (ESE) loss, see :func:`ese_loss`.

    Args:
        temperature (float): Defaults to 0.07.
        symmetric (bool): Add description-to-image. Defaults to True.
        cross_modal_positives (bool): Same-identity descriptions of the other
            modality are positives. Defaults to True.
        loss_weight (float): :math:`\\lambda_{ese}`. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.07,
                 symmetric: bool = True,
                 cross_modal_positives: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'ESELoss: temperature must be > 0, got {temperature}.')
        self.temperature = temperature
        self.symmetric = symmetric
        self.cross_modal_positives = cross_modal_positives
        self.loss_weight = loss_weight

    def forward(self,
                img_feats: Tensor,
                text_feats: Tensor,
                labels: Tensor,
                modalities: Optional[Tensor] = None) -> Tensor:
        """Args: ``v [B, D]``, ``e [B, D]``, ``labels [B]``, ``modalities
        [B]``. Returns the weighted scalar loss."""
        return self.loss_weight * ese_loss(
            img_feats, text_feats, labels, modalities, self.temperature,
            self.symmetric, self.cross_modal_positives)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, symmetric={self.symmetric}'
                f', cross_modal_positives={self.cross_modal_positives}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class CVSCLoss(nn.Module):
    """Cross-View Semantics Compensation (CVSC) loss, see
    :func:`cvsc_loss`.

    Args:
        temperature (float): Defaults to 0.1.
        distill_weight (float): Weight of the KL distillation term.
            Defaults to 1.0.
        contrast_weight (float): Weight of the identity-level contrastive
            term. Defaults to 1.0.
        loss_weight (float): :math:`\\lambda_{cvsc}`. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 distill_weight: float = 1.0,
                 contrast_weight: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'CVSCLoss: temperature must be > 0, got {temperature}.')
        self.temperature = temperature
        self.distill_weight = distill_weight
        self.contrast_weight = contrast_weight
        self.loss_weight = loss_weight

    def forward(self, img_feats: Tensor, text_feats: Tensor, labels: Tensor,
                modalities: Tensor) -> Tensor:
        """Args: ``v [B, D]``, ``e [B, D]``, ``labels [B]``, ``modalities
        [B]``. Returns the weighted scalar loss."""
        return self.loss_weight * cvsc_loss(
            img_feats, text_feats, labels, modalities, self.temperature,
            self.distill_weight, self.contrast_weight)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, distill_weight='
                f'{self.distill_weight}, contrast_weight='
                f'{self.contrast_weight}, loss_weight={self.loss_weight}')


@MODELS.register_module()
class CMSPLoss(nn.Module):
    """Cross-Modality Semantics Purification loss, see :func:`cmsp_loss`.

    Args:
        anchor (str): ``'text'``, ``'image'`` or ``'both'``.
            Defaults to 'both'.
        level (str): ``'sample'`` or ``'identity'``. Defaults to 'sample'.
        detach_intra (bool): The intra-modality distance is a detached
            target (True) or is trained too (False, the earlier behaviour).
            Defaults to True.
        loss_weight (float): :math:`\\lambda_{cmsp}`. Defaults to 1.0.
    """

    def __init__(self,
                 anchor: str = 'both',
                 level: str = 'sample',
                 detach_intra: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if anchor not in CMSP_ANCHORS:
            raise ValueError(f'CMSPLoss: anchor must be one of '
                             f'{CMSP_ANCHORS}, got {anchor!r}.')
        if level not in CMSP_LEVELS:
            raise ValueError(f'CMSPLoss: level must be one of {CMSP_LEVELS}, '
                             f'got {level!r}.')
        self.anchor = anchor
        self.level = level
        self.detach_intra = bool(detach_intra)
        self.loss_weight = loss_weight

    def forward(self, img_feats: Tensor, text_feats: Tensor, labels: Tensor,
                modalities: Tensor) -> Tensor:
        """Args: ``v [B, D]``, ``e [B, D]``, ``labels [B]``, ``modalities
        [B]``. Returns the weighted scalar loss."""
        return self.loss_weight * cmsp_loss(
            img_feats, text_feats, labels, modalities, self.anchor,
            self.level, self.detach_intra)

    def extra_repr(self) -> str:
        return (f'anchor={self.anchor!r}, level={self.level!r}, '
                f'detach_intra={self.detach_intra}, '
                f'loss_weight={self.loss_weight}')
