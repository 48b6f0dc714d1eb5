# Copyright (c) mmvireid contributors. All rights reserved.
"""Under ``--amp`` every loss computes in float32 (``fp32_under_autocast``).

CPU autocast (bf16) stands in for CUDA autocast: the wrapper keys on the
device type of the inputs, so the same code path runs.
"""
import pytest
import torch

from mmvireid.models.losses import (cmsp_loss, cvsc_loss, ese_loss,
                                    hard_triplet_loss, image_text_ce_loss,
                                    label_smooth_ce_loss, msel_loss,
                                    supcon_loss, wrt_triplet_loss)
from mmvireid.models.losses.utils import euclidean_dist


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(4).repeat(2)  # P=4, K=4, 2 mods
    modalities = torch.arange(2).repeat_interleave(16)
    feats = torch.randn(32, 64, generator=g) * 3 + 5
    texts = torch.randn(32, 64, generator=g)
    classes = torch.randn(4, 64, generator=g)
    return feats, texts, classes, labels, modalities


CASES = {
    'supcon': lambda f, t, c, y, m: supcon_loss(f, t, y, y),
    'image_text_ce': lambda f, t, c, y, m: image_text_ce_loss(f, c, y),
    # the first 4 feature columns as fp32 logits of 4 classes
    'label_smooth_ce': lambda f, t, c, y, m: label_smooth_ce_loss(
        f[:, :4], y),
    'hard_triplet': lambda f, t, c, y, m: hard_triplet_loss(f, y),
    'wrt_triplet': lambda f, t, c, y, m: wrt_triplet_loss(f, y),
    'msel': lambda f, t, c, y, m: msel_loss(f, y, num_pos=4),
    'ese': lambda f, t, c, y, m: ese_loss(f, t, y, m),
    'cvsc': lambda f, t, c, y, m: cvsc_loss(f, t, y, m),
    'cmsp': lambda f, t, c, y, m: cmsp_loss(f, t, y, m),
    'euclidean_dist': lambda f, t, c, y, m: euclidean_dist(f, t).sum(),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_loss_is_fp32_under_autocast(name):
    fn = CASES[name]
    args = _inputs()
    expected = fn(*args)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = fn(*args)
    assert got.dtype == torch.float32
    # the very same float32 computation, not a bf16 approximation of it
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_without_the_wrapper_bf16_would_change_the_loss():
    """The check above can fail: bf16 matmul logits do change SupCon."""
    feats, texts, _, labels, _ = _inputs()
    inner = supcon_loss.__wrapped__
    expected = inner(feats, texts, labels, labels)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = inner(feats, texts, labels, labels)
    assert (got.float() - expected).abs().item() > 1e-4


def test_gradients_reach_half_precision_inputs():
    feats = torch.randn(8, 16, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.arange(4).repeat(2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = supcon_loss(feats, feats, labels, labels)
    loss.backward()
    assert loss.dtype == torch.float32
    assert feats.grad is not None and feats.grad.dtype == torch.bfloat16
