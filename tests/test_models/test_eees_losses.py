# Copyright (c) mmvireid contributors. All rights reserved.
"""ESE, CVSC and CMSP: hand-worked values on constructed cases, gradient
directions, agreement with loop-style implementations written here
(float64, values and input gradients), and error messages."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmvireid.models.losses import (CMSPLoss, CVSCLoss, ESELoss, cmsp_loss,
                                    cvsc_loss, ese_loss)
from mmvireid.registry import MODELS

# ---------------------------------------------------------------------------
# Loop-style implementations, written from the formulas of the docstrings:
# one anchor at a time, python lists for the groups.
# ---------------------------------------------------------------------------


def _unit(x):
    return x / x.norm()


def ref_supcon_rows(a, b, la, lb, tau):
    total = 0
    for i in range(len(a)):
        logits = torch.stack([_unit(a[i]) @ _unit(b[k]) / tau
                              for k in range(len(b))])
        log_den = torch.logsumexp(logits, 0)
        pos = [k for k in range(len(b)) if lb[k] == la[i]]
        total = total + sum(logits[k] - log_den for k in pos) / len(pos)
    return -total / len(a)


def ref_ese(v, e, y, m, tau, symmetric, cross):
    keys = [(int(y[i]), 0 if cross else int(m[i])) for i in range(len(y))]
    loss = ref_supcon_rows(v, e, keys, keys, tau)
    if symmetric:
        loss = (loss + ref_supcon_rows(e, v, keys, keys, tau)) / 2
    return loss


def _groups(y, m):
    groups = {}
    for i in range(len(y)):
        groups.setdefault((int(y[i]), int(m[i])), []).append(i)
    return groups


def ref_cvsc(v, e, y, m, tau, w_kd, w_con):
    groups = _groups(y, m)
    keys = sorted(groups)
    vbar = {g: _unit(sum(_unit(v[i]) for i in groups[g])) for g in keys}
    ebar = {g: _unit(sum(_unit(e[i]) for i in groups[g])) for g in keys}
    kd = 0
    for i in range(len(y)):
        g = (int(y[i]), int(m[i]))
        cols = [h for h in keys if h[1] == g[1]]
        t = torch.softmax(
            torch.stack([vbar[g].detach() @ ebar[h] / tau for h in cols]), 0)
        s = torch.log_softmax(
            torch.stack([_unit(v[i]) @ ebar[h] / tau for h in cols]), 0)
        kd = kd + (t * (t.log() - s)).sum()
    kd = kd / len(y)
    labels = [g[0] for g in keys]
    vb = [vbar[g] for g in keys]
    eb = [ebar[g] for g in keys]
    con = (ref_supcon_rows(vb, eb, labels, labels, tau) +
           ref_supcon_rows(eb, vb, labels, labels, tau)) / 2
    return w_kd * kd + w_con * con


def ref_cmsp(v, e, y, m, anchor, level, detach_intra=True):
    n = len(y)

    def d(i, j):  # image i, description j
        return 1 - _unit(v[i]) @ _unit(e[j])

    def anchor_gaps(by_text):
        gaps = {}
        for a in range(n):
            same = [j for j in range(n) if y[j] == y[a] and m[j] == m[a]]
            other = [j for j in range(n) if y[j] == y[a] and m[j] != m[a]]
            if not other:
                continue
            if by_text:  # a is a description; j runs over images
                inter = sum(d(j, a) for j in other) / len(other)
                intra = sum(d(j, a) for j in same) / len(same)
            else:  # a is an image; j runs over descriptions
                inter = sum(d(a, j) for j in other) / len(other)
                intra = sum(d(a, j) for j in same) / len(same)
            # the intra-modality distance is the target (no gradient)
            gap = inter - (intra.detach() if detach_intra else intra)
            gaps.setdefault((int(y[a]), int(m[a])), []).append(gap)
        if not gaps:
            return None
        if level == 'sample':
            flat = [g for gs in gaps.values() for g in gs]
            return sum(g**2 for g in flat) / len(flat)
        return sum((sum(gs) / len(gs))**2
                   for gs in gaps.values()) / len(gaps)

    parts = []
    if anchor in ('text', 'both'):
        parts.append(anchor_gaps(True))
    if anchor in ('image', 'both'):
        parts.append(anchor_gaps(False))
    return sum(parts) / len(parts)


def _batch(num_ids=3, k=2, dim=6, seed=0, dtype=torch.float64):
    """P x K visible then the same P x K infrared, like the sampler."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_ids).repeat_interleave(k).repeat(2)
    m = torch.cat([torch.zeros(num_ids * k), torch.ones(num_ids * k)]).long()
    v = torch.randn(len(y), dim, generator=g, dtype=dtype)
    e = torch.randn(len(y), dim, generator=g, dtype=dtype)
    return v, e, y, m


def _check_against_ref(fn, ref, **kw):
    v, e, y, m = _batch()
    v1 = v.clone().requires_grad_(True)
    v2 = v.clone().requires_grad_(True)
    out = fn(v1, e, y, m, **kw)
    expected = ref(v2, e, y, m, **kw)
    out.backward()
    expected.backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(v1.grad, v2.grad)


# ---------------------------------------------------------------------------
# ESE
# ---------------------------------------------------------------------------


def test_ese_hand_value():
    # two identities, image i and its description both along axis i:
    # each row's softmax is [e^{1/t}, 1] / (e^{1/t} + 1), in both directions
    v = torch.eye(2, dtype=torch.float64)
    y = torch.tensor([0, 1])
    for tau in (1.0, 0.5):
        expected = math.log(1 + math.exp(1 / tau)) - 1 / tau
        torch.testing.assert_close(
            ese_loss(v, v.clone(), y, temperature=tau),
            torch.tensor(expected, dtype=torch.float64))
        # features are L2-normalised inside: the scale does not matter
        torch.testing.assert_close(
            ese_loss(3 * v, 0.2 * v, y, temperature=tau),
            torch.tensor(expected, dtype=torch.float64))


def test_ese_positives_by_identity_across_modalities():
    # image 0 (id 0, visible) and the IR description of id 0 are positives
    # only with cross_modal_positives; i2t only, tau = 1
    v = torch.tensor([[1., 0.], [0., 1.]], dtype=torch.float64)
    e = torch.tensor([[1., 0.], [0., 1.]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    m = torch.tensor([0, 1])
    log_p = math.log(math.e / (math.e + 1))  # own description
    log_q = math.log(1 / (math.e + 1))  # the other one
    both = ese_loss(v, e, y, m, temperature=1.0, symmetric=False)
    torch.testing.assert_close(both.item(), -(log_p + log_q) / 2)
    own = ese_loss(
        v, e, y, m, temperature=1.0, symmetric=False,
        cross_modal_positives=False)
    torch.testing.assert_close(own.item(), -log_p)


@pytest.mark.parametrize('symmetric', [True, False])
@pytest.mark.parametrize('cross', [True, False])
def test_ese_matches_reference(symmetric, cross):
    _check_against_ref(
        lambda v, e, y, m, **kw: ese_loss(v, e, y, m, **kw),
        lambda v, e, y, m, **kw: ref_ese(
            v, e, y, m, kw['temperature'], kw['symmetric'],
            kw['cross_modal_positives']),
        temperature=0.2,
        symmetric=symmetric,
        cross_modal_positives=cross)


def test_ese_gradient_pulls_image_to_its_description():
    e = torch.eye(3, dtype=torch.float64)
    v = torch.tensor([[0.6, 0.5, 0.4], [0.1, 1., 0.], [0., 0.2, 1.]],
                     dtype=torch.float64, requires_grad=True)
    ese_loss(v, e, torch.arange(3), temperature=0.1).backward()
    step = -v.grad[0]  # the descent direction of image 0
    assert step @ e[0] > 0  # towards its own description
    assert step @ e[1] < 0 and step @ e[2] < 0  # away from the others


def test_ese_errors():
    v, e, y, m = _batch()
    with pytest.raises(ValueError, match='cross_modal_positives=False needs '
                       'the modalities'):
        ese_loss(v, e, y, cross_modal_positives=False)
    with pytest.raises(ValueError, match=r'same shape \(B, D\), row i '
                       r'describing image i; got \(12, 6\) and \(11, 6\)'):
        ese_loss(v, e[:-1], y)
    with pytest.raises(ValueError, match='temperature must be > 0'):
        ESELoss(temperature=0)


# ---------------------------------------------------------------------------
# CVSC
# ---------------------------------------------------------------------------


def test_cvsc_single_view_is_pure_contrast():
    # K = 1: the teacher equals the student (KL = 0); two orthogonal
    # identities give the contrast log(1 + e^{-1/t}) in both directions
    v = torch.eye(2, dtype=torch.float64)
    y = torch.tensor([0, 1])
    m = torch.tensor([0, 0])
    out = cvsc_loss(v, v.clone(), y, m, temperature=1.0, distill_weight=5.0)
    torch.testing.assert_close(out.item(), math.log(1 + math.exp(-1)))
    out = cvsc_loss(v, v.clone(), y, m, temperature=1.0, contrast_weight=0.)
    torch.testing.assert_close(out.item(), 0.0)


def _two_view_case(theta):
    """Two identities, one modality, K = 2 views at +-theta around the
    axis of their (identical) descriptions."""
    c, s = math.cos(theta), math.sin(theta)
    v = torch.tensor([[c, s], [c, -s], [s, c], [-s, c]], dtype=torch.float64)
    e = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [0., 1.]],
                     dtype=torch.float64)
    return v, e, torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.long)


def test_cvsc_distillation_hand_value():
    theta, tau = 0.4, 0.5
    v, e, y, m = _two_view_case(theta)
    # multi-view: V_bar_p is exactly E_bar_p, so every teacher row is
    # softmax([1, 0] / tau) (own identity first)
    t = torch.softmax(torch.tensor([1 / tau, 0.]), 0).double()
    c, s = math.cos(theta), math.sin(theta)
    # each view's sims to (own, other) identity text: (c, +-s), mirrored
    kl = 0
    for other in (s, -s):
        st = torch.log_softmax(torch.tensor([c / tau, other / tau]), 0)
        kl += (t * (t.log() - st.double())).sum().item()
    expected = kl / 2  # the two identities contribute the same by symmetry
    out = cvsc_loss(v, e, y, m, temperature=tau, contrast_weight=0.)
    torch.testing.assert_close(out.item(), expected)


def test_cvsc_distillation_gradient_follows_the_teacher():
    v, e, y, m = _two_view_case(0.4)
    v.requires_grad_(True)
    cvsc_loss(v, e, y, m, temperature=0.5, contrast_weight=0.).backward()
    # view 0 leans towards identity 1's text (sin > 0) more than the
    # multi-view teacher: descending moves it back along axis 0
    step = -v.grad[0]
    assert step[1] < 0
    # the teacher is detached: the gradient is that of a KL towards a
    # constant target (with V_bar's gradient it would differ)
    torch.testing.assert_close(
        v.grad, _kd_grad_with_constant_teacher(v.detach(), 0.5))


def _kd_grad_with_constant_teacher(v, tau):
    # teacher rows of _two_view_case are softmax([1, 0] / tau) (own first);
    # the student of each view is softmax over the two identity texts
    v = v.clone().requires_grad_(True)
    t = torch.softmax(torch.tensor([1 / tau, 0.], dtype=v.dtype), 0)
    texts = torch.eye(2, dtype=v.dtype)
    total = 0
    for i, own in enumerate((0, 0, 1, 1)):
        logits = F.normalize(v[i], dim=0) @ texts.t() / tau
        s = torch.log_softmax(logits, 0)
        s = s if own == 0 else s.flip(0)  # own identity first
        total = total + (t * (t.log() - s)).sum()
    (total / 4).backward()
    return v.grad


def test_cvsc_matches_reference():
    _check_against_ref(
        lambda v, e, y, m, **kw: cvsc_loss(v, e, y, m, **kw),
        lambda v, e, y, m, **kw: ref_cvsc(v, e, y, m, kw['temperature'],
                                          kw['distill_weight'],
                                          kw['contrast_weight']),
        temperature=0.3,
        distill_weight=0.7,
        contrast_weight=1.3)


def test_cvsc_uneven_groups_match_reference():
    v, e, y, m = _batch(num_ids=3, k=3)
    keep = torch.tensor([0, 1, 2, 3, 4, 6, 9, 10, 13, 15, 16, 17])
    v, e, y, m = v[keep], e[keep], y[keep], m[keep]
    torch.testing.assert_close(
        cvsc_loss(v, e, y, m, temperature=0.3),
        ref_cvsc(v, e, y, m, 0.3, 1.0, 1.0))


# ---------------------------------------------------------------------------
# CMSP
# ---------------------------------------------------------------------------


def _one_identity(theta_vis, theta_ir):
    """One identity: a visible and an infrared image at the given angles,
    both descriptions along axis 0."""
    v = torch.stack([
        torch.stack([torch.cos(theta_vis), torch.sin(theta_vis)]),
        torch.stack([torch.cos(theta_ir), torch.sin(theta_ir)])
    ])
    e = torch.tensor([[1., 0.], [1., 0.]], dtype=v.dtype)
    return v, e, torch.tensor([0, 0]), torch.tensor([0, 1])


def test_cmsp_hand_value_and_zero_when_gaps_vanish():
    theta = 0.5
    v, e, y, m = _one_identity(
        torch.tensor(0., dtype=torch.float64),
        torch.tensor(theta, dtype=torch.float64))
    gap = 1 - math.cos(theta)
    # text anchors: e_vis sees d(v_ir) - d(v_vis) = gap, e_ir sees -gap
    torch.testing.assert_close(
        cmsp_loss(v, e, y, m, anchor='text').item(), gap**2)
    # image anchors: both descriptions are the same, so every gap is 0
    torch.testing.assert_close(
        cmsp_loss(v, e, y, m, anchor='image').item(), 0.)
    torch.testing.assert_close(
        cmsp_loss(v, e, y, m, anchor='both').item(), gap**2 / 2)
    # inter- and intra-modality distances all equal (images mirrored about
    # the descriptions): zero for every anchor and level
    v, e, y, m = _one_identity(
        torch.tensor(-theta, dtype=torch.float64),
        torch.tensor(theta, dtype=torch.float64))
    for anchor in ('text', 'image', 'both'):
        for level in ('sample', 'identity'):
            assert cmsp_loss(v, e, y, m, anchor, level).item() == \
                pytest.approx(0, abs=1e-12)


def test_cmsp_grows_with_the_gap_and_gradient_closes_it():
    values = []
    for theta in (0.0, 0.2, 0.5, 1.0, 1.5):
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        v, e, y, m = _one_identity(torch.tensor(0., dtype=torch.float64), t)
        loss = cmsp_loss(v, e, y, m, anchor='text')
        values.append(loss.item())
        if theta > 0:
            loss.backward()
            assert t.grad > 0  # descent turns the IR image back: theta -> 0
    assert values[0] == 0
    assert all(a < b for a, b in zip(values, values[1:]))


def test_cmsp_image_anchor_removes_modality_specific_text():
    # the visible description has an extra "colour" axis the IR one lacks;
    # a visible image carrying that colour is closer to its own description
    # than to the IR one -> positive loss, and descent removes the colour
    e = torch.tensor([[1., 1., 0.], [1., 0., 0.]], dtype=torch.float64)
    v = torch.tensor([[1., 0.8, 0.], [1., 0., 0.]],
                     dtype=torch.float64, requires_grad=True)
    y, m = torch.tensor([0, 0]), torch.tensor([0, 1])
    loss = cmsp_loss(v, e, y, m, anchor='image')
    assert loss.item() > 0.01
    loss.backward()
    assert -v.grad[0, 1] < 0  # the colour component of v_vis shrinks


def test_cmsp_sample_vs_identity_level():
    # two visible views whose text-anchored gaps are +g and -g: they cancel
    # at the identity level, not at the sample level
    e = torch.tensor([[1., 0.], [0., 1.], [1., 0.], [0., 1.]],
                     dtype=torch.float64)
    v = torch.tensor([[1., 0.], [0., 1.], [0., 1.], [1., 0.]],
                     dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    m = torch.tensor([0, 0, 1, 1])
    # every description is at distance 0 from one image and 1 from the
    # other of each modality: all means are 0.5 -> gaps 0
    assert cmsp_loss(v, e, y, m, 'text', 'sample').item() == 0
    v = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [0., 1.]],
                     dtype=torch.float64)
    # now e_vis[0] is on the visible images (gap +1), e_vis[1] on the IR
    # ones (gap -1); same for the IR descriptions
    assert cmsp_loss(v, e, y, m, 'text', 'sample').item() == 1
    assert cmsp_loss(v, e, y, m, 'text', 'identity').item() == 0


@pytest.mark.parametrize('anchor', ['text', 'image', 'both'])
@pytest.mark.parametrize('level', ['sample', 'identity'])
@pytest.mark.parametrize('detach_intra', [True, False])
def test_cmsp_matches_reference(anchor, level, detach_intra):
    _check_against_ref(
        lambda v, e, y, m, **kw: cmsp_loss(v, e, y, m, **kw),
        lambda v, e, y, m, **kw: ref_cmsp(v, e, y, m, **kw),
        anchor=anchor,
        level=level,
        detach_intra=detach_intra)


def test_cmsp_intra_distance_is_a_detached_target():
    """Without the stop-gradient CMSP also closes the gap from the other
    end, pushing an image away from its own description. Detached (the
    default), only the inter-modality distances are trained; the intra
    ones are the target."""
    # one identity: the visible text has a "colour" axis the IR one lacks;
    # each image sits (almost) on its own description
    e = torch.tensor([[1., 1., 0.], [1., 0., 0.2]], dtype=torch.float64)
    y, m = torch.tensor([0, 0]), torch.tensor([0, 1])

    def dist(a, b):
        return 1 - F.cosine_similarity(a, b, dim=0).item()

    def one_step(detach_intra):
        v = torch.tensor([[1., 1., 0.], [1., 0., 0.]], dtype=torch.float64,
                         requires_grad=True)
        cmsp_loss(v, e, y, m, detach_intra=detach_intra).backward()
        with torch.no_grad():
            v -= v.grad
        return dist(v[1], e[1]), dist(v[1], e[0]), dist(v[0], e[1])

    before = dist(torch.tensor([1., 0., 0.]), e[1])
    intra_old, *inter_old = one_step(detach_intra=False)
    intra_new, *inter_new = one_step(detach_intra=True)
    # the IR image leaves its own description less when it is the target
    assert intra_old - before > 1.5 * (intra_new - before) > 0
    # the inter-modality distances shrink as much either way
    for old, new in zip(inter_old, inter_new):
        assert new < 0.9 * 0.3 and abs(new - old) < 5e-3


def test_cmsp_identity_level_is_distance_of_mean_features():
    v, e, y, m = _batch(num_ids=1, k=3)
    vn, en = F.normalize(v, dim=1), F.normalize(e, dim=1)
    vbar = [vn[m == k].mean(0) for k in (0, 1)]
    ebar = [en[m == k].mean(0) for k in (0, 1)]
    gaps = [(1 - vbar[1 - k] @ ebar[k]) - (1 - vbar[k] @ ebar[k])
            for k in (0, 1)]
    expected = sum(g**2 for g in gaps) / 2
    torch.testing.assert_close(
        cmsp_loss(v, e, y, m, 'text', 'identity'), expected)


def test_cmsp_skips_identities_without_both_modalities():
    v, e, y, m = _batch()
    # identity 7 has visible images only: it changes nothing
    extra = torch.randn(2, v.size(1), dtype=v.dtype)
    full = cmsp_loss(
        torch.cat([v, extra]), torch.cat([e, extra.flip(1)]),
        torch.cat([y, torch.tensor([7, 7])]), torch.cat(
            [m, torch.tensor([0, 0])]))
    torch.testing.assert_close(full, cmsp_loss(v, e, y, m))
    # nothing left: 0, and still differentiable
    v = v[:6].clone().requires_grad_(True)
    out = cmsp_loss(v, e[:6], y[:6], m[:6])
    assert out.item() == 0
    out.backward()
    assert torch.equal(v.grad, torch.zeros_like(v))


def test_cmsp_errors():
    v, e, y, m = _batch()
    with pytest.raises(ValueError, match=r"anchor must be one of \('text', "
                       r"'image', 'both'\), got 'pair'"):
        cmsp_loss(v, e, y, m, anchor='pair')
    with pytest.raises(ValueError, match="level must be one of"):
        CMSPLoss(level='batch')
    with pytest.raises(ValueError, match=r'modalities must be 0 \(visible\) '
                       r'or 1 \(infrared\), got \[2\]'):
        cmsp_loss(v, e, y, m * 2)
    with pytest.raises(ValueError, match=r'labels of shape \(12, \)'):
        cmsp_loss(v, e, y[:5], m)


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


def test_registered_modules_apply_their_weights():
    v, e, y, m = _batch()
    for cfg, fn in ((dict(type='ESELoss', temperature=0.3), lambda: ese_loss(
            v, e, y, m, temperature=0.3)),
                    (dict(type='CVSCLoss', temperature=0.3), lambda:
                     cvsc_loss(v, e, y, m, temperature=0.3)),
                    (dict(type='CMSPLoss', anchor='text'),
                     lambda: cmsp_loss(v, e, y, m, anchor='text'))):
        module = MODELS.build(dict(cfg, loss_weight=2.5))
        torch.testing.assert_close(module(v, e, y, m), 2.5 * fn())
    assert isinstance(MODELS.build(dict(type='CVSCLoss')), CVSCLoss)
    assert 'anchor=' in repr(CMSPLoss())
    # detach_intra is on by default; the switch restores the old form
    assert CMSPLoss().detach_intra is True
    old = MODELS.build(dict(type='CMSPLoss', detach_intra=False))
    assert 'detach_intra=False' in repr(old)
    vg = v.clone().requires_grad_(True)
    old(vg, e, y, m).backward()
    vr = v.clone().requires_grad_(True)
    ref_cmsp(vr, e, y, m, 'both', 'sample', detach_intra=False).backward()
    torch.testing.assert_close(vg.grad, vr.grad)
