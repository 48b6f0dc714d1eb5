# Copyright (c) mmvireid contributors. All rights reserved.
"""SIIFusion: CSDN's AttentionFusion, numerically ``t_vis + W_c v(t_ir)``."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmvireid.models.necks import SIIFusion
from mmvireid.registry import MODELS


def _set_linear(linear, weight, bias):
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def reference_fusion(module, text_vis, text_ir):
    """CSDN's AttentionFusion.forward, step by step in its own layout: one
    query and one key of length 1, bmm, division by sqrt(d), softmax over
    dim 1, bmm with the value, the common projection, a view and the
    residual. Dropout calls happen in the order q, k, v."""
    q_lin, k_lin, v_lin = (module.embedding_q[0], module.embedding_k[0],
                           module.embedding_v[0])
    p = module.embedding_q[2].p
    training = module.training
    q = F.dropout(torch.tanh(q_lin(text_vis.unsqueeze(1))), p, training)
    k = F.dropout(torch.tanh(k_lin(text_ir.unsqueeze(1))), p, training)
    v = F.dropout(torch.tanh(v_lin(text_ir.unsqueeze(1))), p, training)
    weights = torch.bmm(q, k.permute(0, 2, 1)) / module.qkv_dim**0.5
    weights = torch.softmax(weights, dim=1)
    new_v = weights.bmm(v)
    out = module.embedding_common[0](new_v)
    return out.view(text_vis.shape[0], module.embed_dim) + text_vis


def test_hand_computed_value():
    """D = 2 with chosen weights: out = t_vis + W_c tanh(W_v t_ir + b_v) +
    b_c, whatever q and k are."""
    fusion = SIIFusion(embed_dim=2).eval()
    _set_linear(fusion.embedding_v[0], [[1., 0.], [0., 1.]], [0., 0.])
    _set_linear(fusion.embedding_common[0], [[2., 0.], [0., 2.]], [1., 0.])
    _set_linear(fusion.embedding_q[0], [[5., -3.], [1., 7.]], [0.3, 0.1])
    _set_linear(fusion.embedding_k[0], [[-2., 4.], [6., 1.]], [-0.2, 0.9])
    t_vis = torch.tensor([[1., 2.]])
    t_ir = torch.tensor([[0.5, -1.]])
    # tanh(0.5) = 0.46211716, tanh(-1) = -0.76159416
    expected = torch.tensor(
        [[1. + 2 * 0.46211716 + 1., 2. + 2 * -0.76159416 + 0.]])
    out = fusion(t_vis, t_ir)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(
        out, torch.tensor([[2.92423431, 0.47681169]]), atol=1e-6)


@pytest.mark.parametrize('training', [False, True])
def test_equals_reference_and_residual_mlp(training):
    torch.manual_seed(0)
    fusion = SIIFusion(embed_dim=16, dropout=0.1).train(training)
    t_vis, t_ir = torch.randn(5, 16), torch.randn(5, 16)
    torch.manual_seed(7)
    out = fusion(t_vis, t_ir)
    torch.manual_seed(7)
    ref = reference_fusion(fusion, t_vis, t_ir)
    assert torch.allclose(out, ref, atol=1e-6)
    if not training:
        # the length-1 softmax is 1: a residual MLP on the infrared text
        mlp = fusion.embedding_common[0](torch.tanh(
            fusion.embedding_v[0](t_ir))) + t_vis
        assert torch.allclose(out, mlp, atol=1e-6)


def test_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    fusion = SIIFusion(embed_dim=32, dropout=0.5)
    t_vis, t_ir = torch.randn(4, 32), torch.randn(4, 32)
    fusion.eval()
    a, b = fusion(t_vis, t_ir), fusion(t_vis, t_ir)
    assert torch.equal(a, b)
    fusion.train()
    c = fusion(t_vis, t_ir)
    assert not torch.allclose(a, c)


def test_query_and_key_get_zero_gradients():
    """q and k only feed a softmax over one element: their gradients are
    exactly zero (so only weight decay moves them, as in the reference)."""
    torch.manual_seed(0)
    fusion = SIIFusion(embed_dim=8).eval()
    fusion(torch.randn(3, 8), torch.randn(3, 8)).pow(2).sum().backward()
    for name in ('embedding_q', 'embedding_k'):
        grad = getattr(fusion, name)[0].weight.grad
        assert grad is not None and torch.count_nonzero(grad) == 0, name
    for name in ('embedding_v', 'embedding_common'):
        grad = getattr(fusion, name)[0].weight.grad
        assert torch.count_nonzero(grad) > 0, name


def test_state_dict_keys_map_to_csdn():
    fusion = SIIFusion(embed_dim=8)
    assert sorted(fusion.state_dict()) == sorted(f'embedding_{n}.0.{p}'
                                                 for n in ('q', 'k', 'v',
                                                           'common')
                                                 for p in ('weight', 'bias'))


def test_two_token_variant():
    torch.manual_seed(0)
    fusion = SIIFusion(embed_dim=6, key_tokens='vis_ir').eval()
    t_vis, t_ir = torch.randn(3, 6), torch.randn(3, 6)
    out = fusion(t_vis, t_ir)
    # per sample: one query over the keys [t_vis, t_ir], written directly
    for i in range(3):
        q = torch.tanh(fusion.embedding_q[0](t_vis[i]))
        keys = [
            torch.tanh(fusion.embedding_k[0](t)) for t in (t_vis[i], t_ir[i])
        ]
        vals = [
            torch.tanh(fusion.embedding_v[0](t)) for t in (t_vis[i], t_ir[i])
        ]
        scores = torch.stack([q @ k / math.sqrt(6) for k in keys])
        a = torch.softmax(scores, 0)
        mixed = a[0] * vals[0] + a[1] * vals[1]
        expected = fusion.embedding_common[0](mixed) + t_vis[i]
        assert torch.allclose(out[i], expected, atol=1e-6)
    # a real two-way softmax: differs from the reference fusion
    ref = SIIFusion(embed_dim=6).eval()
    ref.load_state_dict(fusion.state_dict())
    assert not torch.allclose(out, ref(t_vis, t_ir))


def test_registry_and_errors():
    fusion = MODELS.build(dict(type='SIIFusion', embed_dim=4, qkv_dim=3))
    assert fusion.embedding_v[0].weight.shape == (3, 4)
    assert fusion(torch.zeros(2, 4), torch.zeros(2, 4)).shape == (2, 4)
    with pytest.raises(ValueError, match="key_tokens must be one of"):
        SIIFusion(embed_dim=4, key_tokens='both')
    with pytest.raises(ValueError, match=r'dropout must be in \[0, 1\)'):
        SIIFusion(embed_dim=4, dropout=1.0)
    with pytest.raises(
            ValueError,
            match=r'expects two \[B, 4\] text features, got '
            r'\(2, 4\) and \(3, 4\)'):
        fusion(torch.zeros(2, 4), torch.zeros(3, 4))
