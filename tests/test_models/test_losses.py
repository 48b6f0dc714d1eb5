# Copyright (c) mmvireid contributors. All rights reserved.
"""Tests of the losses: hand-worked values, agreement with reference-style
implementations written here (float64, values and input gradients) and error
messages."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmvireid.models.losses import (HardTripletLoss, ImageTextCELoss,
                                    LabelSmoothCELoss, MSELLoss, SupConLoss,
                                    WRTTripletLoss, euclidean_dist,
                                    hard_triplet_loss, label_smooth_ce_loss,
                                    msel_loss, softmax_weights, supcon_loss,
                                    wrt_triplet_loss)
from mmvireid.registry import MODELS

# ---------------------------------------------------------------------------
# Reference-style implementations, written after the description of the
# public code (CLIP-ReID loss/*.py, CSDN tools/loss.py and tools/MSEL.py):
# same operations in the same order, including the (N, -1) reshapes.
# ---------------------------------------------------------------------------


def ref_dist_explicit(x, y):
    sq = (x**2).sum(1, keepdim=True).expand(x.size(0), y.size(0)) + \
        (y**2).sum(1, keepdim=True).expand(y.size(0), x.size(0)).t()
    sq = sq - 2 * torch.matmul(x, y.t())
    return sq.clamp(min=1e-12).sqrt()


def ref_dist_fused(x, y):
    sq = (x**2).sum(1, keepdim=True).expand(x.size(0), y.size(0)) + \
        (y**2).sum(1, keepdim=True).expand(y.size(0), x.size(0)).t()
    sq = sq.addmm_(x, y.t(), beta=1, alpha=-2)
    return sq.clamp(min=1e-12).sqrt()


def ref_supcon(a, b, la, lb):
    m, n = a.size(0), b.size(0)
    mask = torch.eq(
        la.unsqueeze(1).expand(m, n),
        lb.unsqueeze(0).expand(m, n)).float()
    logits = torch.div(torch.matmul(a, b.T), 1.0)
    logits = logits - torch.max(logits, dim=1, keepdim=True)[0].detach()
    log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True))
    return -((mask * log_prob).sum(1) / mask.sum(1)).mean()


def ref_hard_triplet(feats, labels, margin=0.3):
    dist = ref_dist_explicit(feats, feats)
    n = dist.size(0)
    same = labels.expand(n, n).eq(labels.expand(n, n).t())
    diff = labels.expand(n, n).ne(labels.expand(n, n).t())
    ap = torch.max(dist[same].contiguous().view(n, -1), 1)[0]
    an = torch.min(dist[diff].contiguous().view(n, -1), 1)[0]
    y = torch.ones_like(an)
    if margin is None:
        return torch.nn.SoftMarginLoss()(an - ap, y)
    return torch.nn.MarginRankingLoss(margin=margin)(an, ap, y)


def ref_softmax_weights(dist, mask):
    top = torch.max(dist * mask, dim=1, keepdim=True)[0]
    shifted = dist - top
    denom = torch.sum(torch.exp(shifted) * mask, dim=1, keepdim=True) + 1e-6
    return torch.exp(shifted) * mask / denom


def ref_wrt(feats, labels):
    dist = ref_dist_fused(feats, feats)
    n = dist.size(0)
    pos = labels.expand(n, n).eq(labels.expand(n, n).t()).float()
    neg = labels.expand(n, n).ne(labels.expand(n, n).t()).float()
    d_ap, d_an = dist * pos, dist * neg
    far_pos = torch.sum(d_ap * ref_softmax_weights(d_ap, pos), dim=1)
    close_neg = torch.sum(d_an * ref_softmax_weights(-d_an, neg), dim=1)
    return torch.nn.SoftMarginLoss()(close_neg - far_pos,
                                     torch.ones_like(far_pos))


def ref_ls_ce(logits, labels, eps=0.1, k=None):
    log_probs = torch.nn.LogSoftmax(dim=1)(logits)
    k = logits.size(1) if k is None else k
    onehot = torch.zeros(log_probs.size()).scatter_(1, labels.unsqueeze(1), 1)
    q = (1 - eps) * onehot + eps / k
    return (-q * log_probs).mean(0).sum()


def ref_msel(feats, labels, num_pos):
    target, _ = labels.chunk(2, 0)
    n = target.size(0)
    dist = ref_dist_fused(feats, feats)
    same = target.expand(n, n).eq(target.expand(n, n).t())
    terms = []
    for intra, cross in ((dist[:n, :n], dist[:n,
                                             n:]), (dist[n:,
                                                         n:], dist[n:, :n])):
        top = (same * intra).topk(
            num_pos - 1, dim=1, largest=True, sorted=False)[0]
        cross_mean = cross[same].contiguous().view(n, -1).mean(1)
        terms.append(torch.mean(torch.pow(cross_mean - top.mean(1), 2)))
    return (terms[0] + terms[1]) / 2


def pk_labels(p, k):
    """Labels of a P x K batch: 0,0,..,1,1,.. (shuffled ids)."""
    ids = torch.randperm(3 * p)[:p]
    return ids.repeat_interleave(k)


def value_and_grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    loss = fn(*tensors)
    grads = torch.autograd.grad(loss, tensors)
    return loss.detach(), grads


def assert_same(ours, ref, atol=1e-6):
    (v1, g1), (v2, g2) = ours, ref
    torch.testing.assert_close(v1, v2, rtol=0, atol=atol)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


# ---------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------


def test_euclidean_dist_forms():
    x = torch.tensor([[0., 0.], [3., 4.]])
    for fused in (False, True):
        d = euclidean_dist(x, x, fused=fused)
        # |(0,0)-(3,4)| = 5; self-distances are sqrt(1e-12) = 1e-6, not 0.
        torch.testing.assert_close(d, torch.tensor([[1e-6, 5.], [5., 1e-6]]))
    torch.manual_seed(0)
    a, b = torch.randn(
        5, 7, dtype=torch.float64), torch.randn(
            6, 7, dtype=torch.float64)
    torch.testing.assert_close(euclidean_dist(a, b), torch.cdist(a, b))
    torch.testing.assert_close(
        euclidean_dist(a, b, fused=True), ref_dist_fused(a, b), rtol=0, atol=0)
    torch.testing.assert_close(
        euclidean_dist(a, b), ref_dist_explicit(a, b), rtol=0, atol=0)
    with pytest.raises(
            ValueError,
            match=r'\(M, D\) and \(N, D\), got '
            r'\(5, 7\) and \(7,\)'):
        euclidean_dist(a, b[0])


# ---------------------------------------------------------------------------
# SupCon
# ---------------------------------------------------------------------------


def test_supcon_hand_values():
    a = torch.tensor([[1., 0.]])
    b = torch.tensor([[1., 0.], [0., 1.], [1., 0.]])
    la, lb = torch.tensor([0]), torch.tensor([0, 1, 0])
    # logits [1, 0, 1]; both positives have log-prob 1 - log(2e + 1).
    expected = math.log(2 * math.e + 1) - 1  # 0.861995
    assert supcon_loss(a, b, la, lb).item() == pytest.approx(expected, 1e-6)
    assert expected == pytest.approx(0.861995, abs=1e-6)
    # temperature 0.5 doubles the logits: log(2e^2 + 1) - 2 = 0.758624.
    assert SupConLoss(temperature=0.5)(a, b, la, lb).item() == pytest.approx(
        0.758624, abs=1e-6)
    # loss_weight scales.
    assert SupConLoss(loss_weight=2.)(a, b, la, lb).item() == pytest.approx(
        2 * expected, 1e-6)


def test_supcon_matches_reference():
    torch.manual_seed(1)
    y = pk_labels(4, 3)
    img = torch.randn(12, 8, dtype=torch.float64)
    txt = torch.randn(12, 8, dtype=torch.float64)
    for a, b in ((img, txt), (txt, img)):
        assert_same(
            value_and_grads(lambda p, q: SupConLoss()(p, q, y, y), a, b),
            value_and_grads(lambda p, q: ref_supcon(p, q, y, y), a, b))
    # Different label sets on both sides (text of all classes).
    lb = torch.arange(10)
    txt_all = torch.randn(10, 8, dtype=torch.float64)
    la = torch.tensor([3, 3, 7, 0, 9])
    assert_same(
        value_and_grads(lambda p, q: supcon_loss(p, q, la, lb), img[:5],
                        txt_all),
        value_and_grads(lambda p, q: ref_supcon(p, q, la, lb), img[:5],
                        txt_all))


def test_supcon_errors():
    a = torch.randn(3, 4)
    with pytest.raises(
            ValueError,
            match=r'anchor labels \[5\] have no '
            'positive among labels_b'):
        supcon_loss(a, a, torch.tensor([0, 1, 5]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r'got \(3, 4\) and \(3, 5\)'):
        supcon_loss(a, torch.randn(3, 5), torch.arange(3), torch.arange(3))
    with pytest.raises(ValueError, match='one label per feature row'):
        supcon_loss(a, a, torch.arange(2), torch.arange(3))
    with pytest.raises(ValueError, match='temperature must be > 0'):
        SupConLoss(temperature=0)


# ---------------------------------------------------------------------------
# Batch-hard triplet
# ---------------------------------------------------------------------------

# Points on a line: id 0 at x=0 and x=3, id 1 at x=1 and x=5.
LINE = torch.tensor([[0., 0.], [3., 0.], [1., 0.], [5., 0.]])
LINE_Y = torch.tensor([0, 0, 1, 1])


def test_hard_triplet_hand_values():
    # (ap, an) per anchor: (3, 1), (3, 2), (4, 1), (4, 2).
    # margin 0.3: relu(ap - an + 0.3) = 2.3, 1.3, 3.3, 2.3 -> mean 2.3.
    assert HardTripletLoss()(LINE, LINE_Y).item() == pytest.approx(2.3, 1e-6)
    # soft margin: mean log(1 + exp(ap - an)) with ap - an = 2, 1, 3, 2.
    soft = (2 * math.log1p(math.exp(2)) + math.log1p(math.e) +
            math.log1p(math.exp(3))) / 4
    assert soft == pytest.approx(2.153926, abs=1e-6)
    assert HardTripletLoss(margin=None)(LINE, LINE_Y).item() == \
        pytest.approx(soft, 1e-6)
    # A large margin keeps every anchor active: mean(ap - an) + m.
    assert hard_triplet_loss(LINE, LINE_Y, margin=10.).item() == \
        pytest.approx(2 + 10, 1e-6)
    # hard_factor h: relu((1 + h) ap - (1 - h) an + m) with h = 0.5.
    expected = (3 * 1.5 - 0.5 + 0.3 + 3 * 1.5 - 1 + 0.3 + 4 * 1.5 - 0.5 + 0.3 +
                4 * 1.5 - 1 + 0.3) / 4
    assert hard_triplet_loss(LINE, LINE_Y, hard_factor=0.5).item() == \
        pytest.approx(expected, 1e-6)
    # normalize_feature: x / (|x| + 1e-12) maps (0, 0) to itself and the
    # other three points to e = (1, 0): id 0 = {0, e}, id 1 = {e, e}.
    # (ap, an) = (1, 1), (1, ~0), (~0, ~0), (~0, ~0) -> relu(ap - an + 0.3)
    # = 0.3, 1.3, 0.3, 0.3 -> mean 0.55.
    assert HardTripletLoss(normalize_feature=True)(LINE, LINE_Y).item() == \
        pytest.approx(0.55, abs=1e-5)


@pytest.mark.parametrize('margin', [0.3, None])
def test_hard_triplet_matches_reference(margin):
    torch.manual_seed(2)
    for p, k in ((4, 4), (3, 2), (5, 3)):
        feats = torch.randn(p * k, 16, dtype=torch.float64)
        y = pk_labels(p, k)
        assert_same(
            value_and_grads(lambda f: HardTripletLoss(margin=margin)(f, y),
                            feats),
            value_and_grads(lambda f: ref_hard_triplet(f, y, margin), feats))


def test_hard_triplet_unbalanced_batch_is_mined_per_anchor():
    # 4 samples of id 0, one each of ids 1 and 2: 16 + 1 + 1 = 18 positive
    # entries = 6 x 3, so the reference's view(6, -1) runs and mixes rows.
    torch.manual_seed(3)
    feats = torch.randn(6, 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 1, 2])
    dist = torch.cdist(feats, feats)
    terms = []
    for i in range(6):
        pos = [dist[i, j] for j in range(6) if y[j] == y[i] and j != i]
        neg = [dist[i, j] for j in range(6) if y[j] != y[i]]
        ap = max(pos) if pos else torch.tensor(1e-6, dtype=torch.float64)
        terms.append(torch.relu(ap - min(neg) + 0.3))
    expected = torch.stack(terms).mean()
    ours = HardTripletLoss()(feats, y)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-9)
    assert abs(ref_hard_triplet(feats, y).item() - expected.item()) > 1e-3


def test_hard_triplet_errors():
    with pytest.raises(
            ValueError,
            match='at least two identities in the '
            'batch, but every sample has label 7'):
        HardTripletLoss()(torch.randn(4, 3), torch.full((4, ), 7))
    with pytest.raises(ValueError, match=r'labels of shape \(4, \)'):
        HardTripletLoss()(torch.randn(4, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r'shape \(N, D\), got \(4,\)'):
        HardTripletLoss()(torch.randn(4), torch.zeros(4))


# ---------------------------------------------------------------------------
# WRT triplet
# ---------------------------------------------------------------------------


def wrt_scalar(points, labels, fix_negative_max=False):
    """WRT loss with Python floats, one anchor at a time."""
    total = 0.
    n = len(points)
    for i in range(n):
        d = [
            max(math.dist(points[i], points[j])**2, 1e-12)**0.5
            for j in range(n)
        ]
        pos = [d[j] for j in range(n) if labels[j] == labels[i]]
        neg = [d[j] for j in range(n) if labels[j] != labels[i]]
        # positive shift: max over the row of d * mask = the largest pos.
        top = max(pos)
        wp = [math.exp(v - top) for v in pos]
        far = sum(v * w for v, w in zip(pos, wp)) / (sum(wp) + 1e-6)
        # negative shift: 0 in the reference, -min(neg) when fixed.
        shift = -min(neg) if fix_negative_max and neg else 0.
        wn = [math.exp(-v - shift) for v in neg]
        close = sum(v * w for v, w in zip(neg, wn)) / (sum(wn) + 1e-6)
        total += math.log1p(math.exp(far - close))
    return total / n


def test_wrt_hand_values():
    # LINE: id 0 at x = 0, 3; id 1 at x = 1, 5. Ignoring the 1e-6 terms
    # (self distance and the denominator's epsilon):
    # far = softmax-weighted positive distance, e.g. anchor 0: positives
    #   {~0, 3} -> 3 / (1 + e^-3) = 2.857722; anchors 2, 3: 4 / (1 + e^-4)
    #   = 3.928055.
    # close = softmax(-d)-weighted negative distance: anchor 0 {1, 5}
    #   -> (e^-1 + 5 e^-5) / (e^-1 + e^-5) = 1.071945; anchor 1 {2, 2} -> 2;
    #   anchor 2 {1, 2} -> 1.268941; anchor 3 {5, 2} -> 2.142278.
    # terms log(1 + exp(far - close)) = 1.940785, 1.211281, 2.726782,
    # 1.940785 -> mean 1.954908.
    loss = WRTTripletLoss()(LINE.double(), LINE_Y)
    assert loss.item() == pytest.approx(1.954908, abs=1e-5)
    assert loss.item() == pytest.approx(
        wrt_scalar(LINE.tolist(), LINE_Y.tolist()), abs=1e-9)


def test_wrt_matches_reference():
    torch.manual_seed(4)
    for p, k, scale in ((4, 4, 1.), (3, 2, 0.3), (6, 4, 0.1)):
        feats = scale * torch.randn(p * k, 16, dtype=torch.float64)
        y = pk_labels(p, k)
        assert_same(
            value_and_grads(lambda f: WRTTripletLoss()(f, y), feats),
            value_and_grads(lambda f: ref_wrt(f, y), feats))
    # Unbalanced batches need no reshaping here: both agree as well.
    feats = torch.randn(7, 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert_same(
        value_and_grads(lambda f: wrt_triplet_loss(f, y), feats),
        value_and_grads(lambda f: ref_wrt(f, y), feats))


def test_wrt_negative_max_quirk():
    # Far-apart identities: exp(-d) of every negative is far below 1e-6, so
    # the reference's whole-row shift of 0 lets the 1e-6 dominate and the
    # "closest negative" collapses towards 0.
    pts = torch.tensor([[0., 0.], [1., 0.], [40., 0.], [41., 0.]],
                       dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    weights = softmax_weights(
        -euclidean_dist(pts, pts) * (y[:, None] != y).double(),
        (y[:, None] != y).double())
    assert weights.sum(1).max().item() < 1e-3  # weights underflow
    quirk = wrt_triplet_loss(pts, y)
    fixed = wrt_triplet_loss(pts, y, fix_negative_max=True)
    # Reference: close ~ 0, far ~ 1 / (1 + e^-1) -> log(1 + e^0.73).
    assert quirk.item() == pytest.approx(
        wrt_scalar(pts.tolist(), y.tolist()), abs=1e-9)
    assert quirk.item() == pytest.approx(
        math.log1p(math.exp(1 / (1 + math.exp(-1)))), abs=1e-3)
    # Fixed: close ~ 39.27 (softmax of -39, -40), loss ~ exp(-38.5) ~ 0.
    assert fixed.item() == pytest.approx(
        wrt_scalar(pts.tolist(), y.tolist(), True), rel=1e-6)
    assert fixed.item() < 1e-15
    assert WRTTripletLoss(fix_negative_max=True)(pts, y).item() == \
        fixed.item()
    # On a well-spread batch both forms agree closely.
    torch.manual_seed(5)
    feats = 0.2 * torch.randn(8, 4, dtype=torch.float64)
    yy = pk_labels(4, 2)
    torch.testing.assert_close(
        wrt_triplet_loss(feats, yy),
        wrt_triplet_loss(feats, yy, fix_negative_max=True),
        rtol=1e-5,
        atol=0)


def test_wrt_fixed_is_finite_for_huge_distances():
    pts = torch.tensor([[0.], [1.], [3000.], [3001.]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = WRTTripletLoss(fix_negative_max=True)(pts, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pts.grad).all()


def test_wrt_single_identity_like_reference():
    feats = torch.randn(4, 3, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    # No negatives: their weights are 0, so close = 0, as in the reference.
    torch.testing.assert_close(wrt_triplet_loss(feats, y), ref_wrt(feats, y))
    torch.testing.assert_close(
        wrt_triplet_loss(feats, y, fix_negative_max=True), ref_wrt(feats, y))


# ---------------------------------------------------------------------------
# Label-smoothed CE and image-to-text CE
# ---------------------------------------------------------------------------


def test_label_smooth_ce_hand_values():
    # Uniform logits: every log-prob is -log 4 and q sums to 1.
    assert LabelSmoothCELoss()(torch.zeros(2, 4),
                               torch.tensor([1, 3])).item() == pytest.approx(
                                   math.log(4), 1e-6)
    # Logits (2, 0, 0), label 0, eps 0.1, K 3:
    # log p = (2 - L, -L, -L) with L = log(e^2 + 2) = 2.239545;
    # q = (0.9 + 0.1/3, 0.1/3, 0.1/3) -> 0.933333 * 0.239545 +
    # 2 * 0.033333 * 2.239545 = 0.372878.
    logits = torch.tensor([[2., 0., 0.]])
    assert LabelSmoothCELoss()(logits, torch.tensor([0])).item() == \
        pytest.approx(0.372878, abs=1e-6)
    # eps 0 is plain CE.
    torch.manual_seed(6)
    z, y = torch.randn(5, 7), torch.randint(0, 7, (5, ))
    torch.testing.assert_close(
        LabelSmoothCELoss(epsilon=0.)(z, y), F.cross_entropy(z, y))
    # num_classes overrides K in eps / K (CLIP-ReID passes its class count):
    # 0.9 * 0.239545 + (0.1 / 6) * (0.239545 + 2 * 2.239545) = 0.294234.
    assert label_smooth_ce_loss(logits, torch.tensor([0]), 0.1,
                                6).item() == pytest.approx(
                                    0.294234, abs=1e-6)


def test_label_smooth_ce_float32_targets_quirk():
    torch.manual_seed(7)
    z = torch.randn(6, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (6, ))
    assert_same(
        value_and_grads(lambda t: LabelSmoothCELoss()(t, y), z),
        value_and_grads(lambda t: ref_ls_ce(t, y), z),
        atol=1e-12)
    # The smoothed targets are float32-rounded (0.9 + 0.02 is not exact), so
    # the float64 loss differs from one with float64 targets.
    log_p = torch.log_softmax(z, 1)
    q64 = 0.9 * F.one_hot(y, 5).double() + 0.1 / 5
    exact = (-q64 * log_p).mean(0).sum()
    ours = LabelSmoothCELoss()(z, y)
    assert ours.dtype == torch.float64
    assert 1e-10 < abs(ours.item() - exact.item()) < 1e-6


def test_label_smooth_ce_errors():
    with pytest.raises(
            ValueError,
            match=r'labels must lie in \[0, 3\] for 4 '
            'logit columns, got values from 0 to 4'):
        LabelSmoothCELoss()(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r'labels of shape \(2, \)'):
        LabelSmoothCELoss()(torch.zeros(2, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match=r'epsilon must be in \[0, 1\)'):
        LabelSmoothCELoss(epsilon=1.)


def test_image_text_ce():
    img = torch.tensor([[1., 0.], [0., 2.]])
    txt = torch.tensor([[1., 0.], [0., 1.]])
    # logits [[1, 0], [0, 2]], labels (0, 1): log(1 + e^-1) and
    # log(1 + e^-2) -> mean (0.313262 + 0.126928) / 2 = 0.220095.
    loss = ImageTextCELoss()(img, txt, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(0.220095, abs=1e-6)
    torch.manual_seed(8)
    img = torch.randn(6, 8, dtype=torch.float64)
    txt = torch.randn(10, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (6, ))
    assert_same(
        value_and_grads(lambda a, b: ImageTextCELoss()(a, b, y), img, txt),
        value_and_grads(lambda a, b: F.cross_entropy(a @ b.t(), y), img, txt))
    assert_same(
        value_and_grads(lambda a, b: ImageTextCELoss(epsilon=0.1)(a, b, y),
                        img, txt),
        value_and_grads(lambda a, b: ref_ls_ce(a @ b.t(), y), img, txt))
    assert ImageTextCELoss(loss_weight=0.05)(img, txt, y).item() == \
        pytest.approx(0.05 * F.cross_entropy(img @ txt.t(), y).item())
    with pytest.raises(
            ValueError,
            match=r'\(N, D\) and text features '
            r'\(C, D\), got \(6, 8\) and \(10, 4\)'):
        ImageTextCELoss()(img, txt[:, :4], y)
    with pytest.raises(ValueError, match='labels must lie in'):
        ImageTextCELoss()(img, txt[:3], y.clamp(min=5))


# ---------------------------------------------------------------------------
# MSEL
# ---------------------------------------------------------------------------


def test_msel_hand_values():
    # Per identity and modality two images 2 apart; the infrared images sit 1
    # above the visible ones. For every anchor: intra = 2 (the farther of
    # self ~0 and 2), cross = (1 + sqrt 5) / 2 -> (cross - intra)^2 =
    # 3.5 - 1.5 sqrt 5 = 0.145898 in both modalities.
    vis = torch.tensor([[0., 0.], [2., 0.], [10., 0.], [12., 0.]])
    ir = vis + torch.tensor([0., 1.])
    feats = torch.cat([vis, ir])
    y = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    expected = 3.5 - 1.5 * math.sqrt(5)
    assert expected == pytest.approx(0.145898, abs=1e-6)
    assert MSELLoss(num_pos=2)(feats,
                               y).item() == pytest.approx(expected, 1e-5)
    # The infrared labels are never read.
    y_bad = torch.tensor([0, 0, 1, 1, 9, 9, 9, 9])
    assert MSELLoss(num_pos=2)(feats,
                               y_bad).item() == pytest.approx(expected, 1e-5)
    assert MSELLoss(num_pos=2, loss_weight=3.)(feats, y).item() == \
        pytest.approx(3 * expected, 1e-5)
    # feat_norm equals the loss on F.normalize'd features.
    torch.testing.assert_close(
        msel_loss(feats, y, 2, feat_norm=True),
        msel_loss(F.normalize(feats, dim=-1), y, 2))


def test_msel_matches_reference():
    torch.manual_seed(9)
    for p, k in ((4, 4), (3, 2), (2, 3)):
        y = pk_labels(p, k)
        labels = torch.cat([y, y])
        feats = torch.randn(2 * p * k, 16, dtype=torch.float64)
        assert_same(
            value_and_grads(lambda f: MSELLoss(num_pos=k)(f, labels), feats),
            value_and_grads(lambda f: ref_msel(f, labels, k), feats))
    # num_pos > K lets self distances and zeros in; values still match (their
    # gradients are rounding noise in the reference too).
    y = pk_labels(4, 2)
    labels = torch.cat([y, y])
    feats = torch.randn(16, 8, dtype=torch.float64)
    torch.testing.assert_close(
        MSELLoss(num_pos=4)(feats, labels),
        ref_msel(feats, labels, 4),
        rtol=0,
        atol=1e-6)


def test_msel_errors():
    with pytest.raises(ValueError, match='odd batch size 7'):
        MSELLoss(num_pos=2)(torch.randn(7, 3), torch.zeros(7))
    with pytest.raises(
            ValueError,
            match=r'num_pos - 1 = 4 exceeds the 3 '
            'samples per modality'):
        MSELLoss(num_pos=5)(torch.randn(6, 3), torch.zeros(6))
    with pytest.raises(ValueError, match='num_pos must be an int >= 2'):
        MSELLoss(num_pos=1)
    with pytest.raises(ValueError, match=r'labels of shape \(6, \)'):
        MSELLoss()(torch.randn(6, 3), torch.zeros(4))


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('name', [
    'SupConLoss', 'HardTripletLoss', 'WRTTripletLoss', 'LabelSmoothCELoss',
    'ImageTextCELoss', 'MSELLoss'
])
def test_registered(name):
    loss = MODELS.build(dict(type=name, loss_weight=0.5))
    assert type(loss).__name__ == name and loss.loss_weight == 0.5


@pytest.mark.parametrize('name,fn,kwargs', [
    ('HardTripletLoss', hard_triplet_loss, dict(margin=0.3)),
    ('WRTTripletLoss', wrt_triplet_loss, dict()),
    ('LabelSmoothCELoss', label_smooth_ce_loss, dict(epsilon=0.1)),
    ('MSELLoss', msel_loss, dict(num_pos=2)),
])
def test_branch_sequence_is_summed_then_weighted_once(name, fn, kwargs):
    """A sequence of inputs (one per head branch) gives ``w * (a + b)``,
    bit for bit: the arithmetic of the model-level weight it replaces,
    which ``w * a + w * b`` need not equal."""
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    branches = [torch.randn(8, 5, generator=gen) for _ in range(3)]
    loss = MODELS.build(dict(type=name, loss_weight=0.15, **kwargs))
    raw = [fn(x, labels, *kwargs.values()) for x in branches]
    assert torch.equal(loss(branches, labels), 0.15 * (raw[0] + raw[1] +
                                                       raw[2]))
    assert torch.equal(loss(tuple(branches[:2]), labels),
                       0.15 * (raw[0] + raw[1]))
    assert torch.equal(loss(branches[0], labels), 0.15 * raw[0])
    with pytest.raises(ValueError, match=f'{name}: no inputs'):
        loss([], labels)


def test_soft_margin_is_finite_where_torch_overflows():
    from mmvireid.models.losses.triplet_loss import soft_margin
    x = torch.tensor([-3.0, 0.0, 2.5, 40.0])
    torch.testing.assert_close(
        soft_margin(x), F.soft_margin_loss(x, torch.ones_like(x)))
    far = torch.tensor([-200.0, 1.0], requires_grad=True)
    assert torch.isinf(F.soft_margin_loss(far, torch.ones(2)))
    loss = soft_margin(far)
    loss.backward()
    assert loss.item() == pytest.approx((200.0 + math.log1p(math.exp(-1.0)))
                                        / 2)
    assert torch.isfinite(far.grad).all()
