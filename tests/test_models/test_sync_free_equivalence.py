# Copyright (c) mmvireid contributors. All rights reserved.
"""The sync-free rewrites compute exactly what the code they replaced did.

Each ``old_*`` function below is the previous implementation, copied as it
was (group structure found on the features' device with ``unique``,
``nonzero``, ``bincount`` and boolean masks). The new code finds the same
structure on the host and runs the same kernels on the device, so values and
gradients must be *bit*-identical (``torch.equal``), with labels given on
the host or on the features' device, and for batches of any layout.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor

from mmvireid.models.losses import (cmsp_loss, cvsc_loss, hard_example_mining,
                                    identity_text_distributions, supcon_loss)
from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

register_all_modules()


# ---------------------------------------------------------------------- #
# the previous implementations
# ---------------------------------------------------------------------- #
def old_supcon_loss(feats_a, feats_b, labels_a, labels_b, temperature=1.0):
    mask = torch.eq(labels_a.unsqueeze(1), labels_b.unsqueeze(0)).float()
    num_pos = mask.sum(1)
    logits = torch.matmul(feats_a, feats_b.t()) / temperature
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
    log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / num_pos
    return -mean_log_prob_pos.mean()


def old_hard_example_mining(dist_mat, labels):
    is_pos = labels.unsqueeze(0) == labels.unsqueeze(1)
    is_neg = ~is_pos
    dist_ap = dist_mat.masked_fill(~is_pos, float('-inf')).max(dim=1)[0]
    dist_an = dist_mat.masked_fill(~is_neg, float('inf')).min(dim=1)[0]
    return dist_ap, dist_an


def old_identity_text_distributions(img_feats, text_feats, labels,
                                    modalities, temperature=1.0,
                                    normalize=False):
    if normalize:
        img_feats = F.normalize(img_feats, dim=1)
        text_feats = F.normalize(text_feats, dim=1)
    log_p = F.log_softmax(img_feats @ text_feats.t() / temperature, dim=1)
    ids_vis = torch.unique(labels[modalities == 0])
    ids_ir = torch.unique(labels[modalities == 1])
    ids = ids_vis[torch.isin(ids_vis, ids_ir)]

    def mean_log_prob(modality):
        rows = []
        for pid in ids:
            sel = log_p[(labels == pid) & (modalities == modality)]
            rows.append(torch.logsumexp(sel, dim=0) - math.log(sel.size(0)))
        return torch.stack(rows)

    return mean_log_prob(0), mean_log_prob(1), ids


def old_group_ids(labels, modalities):
    key = labels.long() * 2 + modalities.long()
    uniq, group = torch.unique(key, return_inverse=True)
    return group, uniq // 2, uniq % 2


def old_group_mean(x, group, num_groups):
    sums = x.new_zeros(num_groups, x.size(1)).index_add_(0, group, x)
    counts = torch.bincount(group, minlength=num_groups).to(x.dtype)
    return sums / counts.unsqueeze(1)


def old_cvsc_loss(img_feats, text_feats, labels, modalities, temperature=0.1,
                  distill_weight=1.0, contrast_weight=1.0):
    v = F.normalize(img_feats, dim=1)
    e = F.normalize(text_feats, dim=1)
    group, group_label, group_mod = old_group_ids(labels, modalities)
    num_groups = group_label.numel()
    v_bar = F.normalize(old_group_mean(v, group, num_groups), dim=1)
    e_bar = F.normalize(old_group_mean(e, group, num_groups), dim=1)
    same_mod = modalities.long().unsqueeze(1) == group_mod.unsqueeze(0)
    neg_inf = torch.finfo(v.dtype).min
    teacher_logits = (v_bar.detach()[group] @ e_bar.t()) / temperature
    student_logits = (v @ e_bar.t()) / temperature
    teacher_logp = F.log_softmax(
        teacher_logits.masked_fill(~same_mod, neg_inf), dim=1)
    student_logp = F.log_softmax(
        student_logits.masked_fill(~same_mod, neg_inf), dim=1)
    teacher_p = teacher_logp.exp()
    kl = torch.where(same_mod, teacher_p * (teacher_logp - student_logp),
                     torch.zeros_like(teacher_p)).sum(1)
    loss_kd = kl.mean()
    loss_con = (old_supcon_loss(v_bar, e_bar, group_label, group_label,
                                temperature) +
                old_supcon_loss(e_bar, v_bar, group_label, group_label,
                                temperature)) / 2
    return distill_weight * loss_kd + contrast_weight * loss_con


def old_cmsp_gaps(dist, same_id, same_mod, dim):
    intra = same_id & same_mod
    inter = same_id & ~same_mod
    n_intra = intra.sum(dim).to(dist.dtype)
    n_inter = inter.sum(dim).to(dist.dtype)
    valid = (n_intra > 0) & (n_inter > 0)
    d_intra = (dist * intra).sum(dim) / n_intra.clamp(min=1)
    d_inter = (dist * inter).sum(dim) / n_inter.clamp(min=1)
    return d_inter - d_intra, valid


def old_cmsp_loss(img_feats, text_feats, labels, modalities, anchor='both',
                  level='sample'):
    v = F.normalize(img_feats, dim=1)
    e = F.normalize(text_feats, dim=1)
    dist = 1 - v @ e.t()
    same_id = labels.unsqueeze(1) == labels.unsqueeze(0)
    same_mod = modalities.unsqueeze(1) == modalities.unsqueeze(0)
    group, _, _ = old_group_ids(labels, modalities)
    num_groups = int(group.max()) + 1 if group.numel() else 0

    def reduce(gaps, valid):
        if not bool(valid.any()):
            return dist.sum() * 0
        if level == 'sample':
            return gaps[valid].pow(2).mean()
        keep = torch.unique(group[valid])
        means = old_group_mean(gaps.unsqueeze(1), group, num_groups)[keep, 0]
        return means.pow(2).mean()

    losses = []
    if anchor in ('text', 'both'):
        losses.append(reduce(*old_cmsp_gaps(dist, same_id, same_mod, dim=0)))
    if anchor in ('image', 'both'):
        losses.append(reduce(*old_cmsp_gaps(dist, same_id, same_mod, dim=1)))
    return sum(losses) / len(losses)


def old_forward_stem(encoder, x, modality):
    """CLIPImageEncoder.forward_stem before: the split found on the device
    of ``modality`` with ``unique().tolist()`` and ``nonzero``."""
    modality = torch.as_tensor(modality, device=x.device).reshape(-1)
    present = torch.unique(modality).tolist()
    if len(present) == 1:
        return encoder._stem(x, present[0])
    vis_idx = torch.nonzero(modality == 0).squeeze(1)
    ir_idx = torch.nonzero(modality == 1).squeeze(1)
    vis_out = encoder._stem(x[vis_idx], 0)
    ir_out = encoder._stem(x[ir_idx], 1)
    out = vis_out.new_empty((x.shape[0], ) + tuple(vis_out.shape[1:]))
    out[vis_idx] = vis_out
    out[ir_idx] = ir_out
    return out


# ---------------------------------------------------------------------- #
# batches: P x K layouts, unbalanced ones and identities in one modality
# ---------------------------------------------------------------------- #
LAYOUTS = {
    'pk': ([0, 0, 3, 3, 0, 0, 3, 3], [0, 0, 0, 0, 1, 1, 1, 1]),
    'shuffled': ([3, 0, 0, 3, 3, 0, 3, 0], [1, 0, 1, 0, 0, 0, 1, 1]),
    # identity 5 has no infrared image, identity 2 three visible ones
    'unbalanced': ([2, 2, 2, 5, 5, 2, 7, 7, 2],
                   [0, 0, 0, 0, 0, 1, 1, 0, 1]),
}


def feats_for(layout, dim=6, seed=0):
    labels, mods = (torch.tensor(v) for v in LAYOUTS[layout])
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(len(labels), dim, generator=g, requires_grad=True)
    txt = torch.randn(len(labels), dim, generator=g, requires_grad=True)
    return img, txt, labels, mods


def assert_same(new_fn, old_fn, *inputs):
    """Equal values and equal gradients w.r.t. every float input."""
    leaves = [t for t in inputs if t.requires_grad]
    new = new_fn()
    new_grads = torch.autograd.grad(new.sum(), leaves, allow_unused=True)
    old = old_fn()
    old_grads = torch.autograd.grad(old.sum(), leaves, allow_unused=True)
    assert torch.equal(new, old), (new, old)
    for a, b in zip(new_grads, old_grads):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
@pytest.mark.parametrize('anchor', ['text', 'image', 'both'])
@pytest.mark.parametrize('level', ['sample', 'identity'])
def test_cmsp_equals_previous(layout, anchor, level):
    img, txt, labels, mods = feats_for(layout)
    # the previous implementation differentiates the intra-modality
    # distance too (detach_intra=False, no longer the default)
    assert_same(
        lambda: cmsp_loss(img, txt, labels, mods, anchor, level,
                          detach_intra=False),
        lambda: old_cmsp_loss(img, txt, labels, mods, anchor, level), img,
        txt)


def test_cmsp_without_any_cross_modal_identity_equals_previous():
    img, txt, _, _ = feats_for('pk')
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    mods = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert_same(
        lambda: cmsp_loss(img, txt, labels, mods, detach_intra=False),
        lambda: old_cmsp_loss(img, txt, labels, mods), img, txt)


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_cvsc_equals_previous(layout):
    img, txt, labels, mods = feats_for(layout, seed=1)
    assert_same(lambda: cvsc_loss(img, txt, labels, mods, 0.2, 0.7, 1.3),
                lambda: old_cvsc_loss(img, txt, labels, mods, 0.2, 0.7, 1.3),
                img, txt)


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_alignment_distributions_equal_previous(layout):
    img, _, labels, mods = feats_for(layout, seed=2)
    text = torch.randn(4, img.size(1), requires_grad=True)
    for i in range(2):  # log_q_vis, log_q_ir
        assert_same(
            lambda: identity_text_distributions(img, text, labels, mods,
                                                0.5)[i],
            lambda: old_identity_text_distributions(img, text, labels, mods,
                                                    0.5)[i], img, text)
    assert torch.equal(
        identity_text_distributions(img, text, labels, mods)[2],
        old_identity_text_distributions(img, text, labels, mods)[2])


def test_supcon_and_mining_equal_previous():
    img, txt, labels, _ = feats_for('unbalanced', seed=3)
    assert_same(lambda: supcon_loss(img, txt, labels, labels, 0.3),
                lambda: old_supcon_loss(img, txt, labels, labels, 0.3), img,
                txt)
    dist = torch.cdist(img, txt)
    for new, old in zip(
            hard_example_mining(dist, labels),
            old_hard_example_mining(dist, labels)):
        assert torch.equal(new, old)


@pytest.mark.parametrize('arch', ['rn', 'vit'])
@pytest.mark.parametrize(
    'modality', [[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_modality_stems_equal_previous(arch, modality):
    """The stem split, now found on the host: same output and gradients,
    BatchNorm statistics included (each stem sees only its modality)."""
    if arch == 'rn':
        cfg = dict(
            arch=dict(
                embed_dim=16,
                vision_cfg=dict(
                    image_size=(64, 32), layers=(1, 1, 1, 1), width=8),
                text_cfg=dict(width=32, heads=2, layers=1)),
            input_size=(64, 32))
    else:
        cfg = dict(
            arch=dict(
                embed_dim=16,
                vision_cfg=dict(
                    image_size=(32, 16), patch_size=8, width=32, layers=1,
                    head_width=16),
                text_cfg=dict(width=32, heads=2, layers=1)),
            input_size=(32, 16),
            stride_size=8)
    torch.manual_seed(0)
    enc = MODELS.build(
        dict(type='CLIPImageEncoder', modality_specific_stem=True, **cfg))
    enc.train()
    x = torch.randn((5, 3) + enc.input_size, requires_grad=True)
    mod = torch.tensor(modality)
    ref = MODELS.build(
        dict(type='CLIPImageEncoder', modality_specific_stem=True, **cfg))
    ref.load_state_dict(enc.state_dict())
    ref.train()
    assert_same(lambda: enc.forward_stem(x, mod),
                lambda: old_forward_stem(ref, x, mod), x)
    for (name, a), b in zip(enc.named_buffers(), ref.buffers()):
        assert torch.equal(a, b), name  # BN running stats moved alike


@pytest.mark.parametrize('stacked', [False, True])
@pytest.mark.parametrize('to_rgb', [True, False])
def test_preprocessed_images_equal_mmengine(stacked, to_rgb):
    """VIReIDDataPreprocessor's image path (channel swap by ``flip``, one
    batched normalisation) gives mmengine's ImgDataPreprocessor's batch,
    and leaves the data samples as they were (on the host)."""
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    ours = MODELS.build(
        dict(type='VIReIDDataPreprocessor', mean=mean, std=std,
             to_rgb=to_rgb))
    ref = ImgDataPreprocessor(mean=mean, std=std, bgr_to_rgb=to_rgb)
    g = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, 16, 8), generator=g, dtype=torch.uint8)
        for _ in range(5)
    ]
    inputs = torch.stack(images) if stacked else images
    samples = [object() for _ in images]
    out = ours(dict(inputs=inputs, data_samples=samples), True)
    expected = ref(dict(inputs=inputs), True)['inputs']
    assert torch.equal(out['inputs'], expected)
    assert out['data_samples'] is samples
    # padding is left to mmengine's path
    padded = MODELS.build(
        dict(type='VIReIDDataPreprocessor', mean=mean, std=std,
             pad_size_divisor=32))
    assert padded(dict(inputs=images))['inputs'].shape == (5, 3, 32, 32)
