# Copyright (c) mmvireid contributors. All rights reserved.
"""``CLIPImageEncoder(channels_last=True)``: the RN trunk's convolutions in
NHWC layout, the same maths as the default layout, refused for a ViT, and
set in the RN50 model configs (not the tiny toy ones)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

register_all_modules()
ROOT = osp.join(osp.dirname(__file__), '..', '..')
CL = torch.channels_last

RN = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=(64, 32), layers=(1, 1, 1, 1), width=8),
    text_cfg=dict(width=32, heads=2, layers=1))
VIT = dict(
    embed_dim=16,
    vision_cfg=dict(
        image_size=(32, 16), patch_size=8, width=32, layers=1,
        head_width=16),
    text_cfg=dict(width=32, heads=2, layers=1))


def encoder_pair(**kwargs):
    """The same random encoder in the default and the NHWC layout."""
    cfg = dict(type='CLIPImageEncoder', arch=RN, input_size=(64, 32))
    cfg.update(kwargs)
    torch.manual_seed(0)
    ref = MODELS.build(cfg)
    fast = MODELS.build(dict(cfg, channels_last=True))
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def conv_weights(encoder):
    return {
        name: p
        for name, p in encoder.named_parameters() if p.dim() == 4
    }


def test_conv_weights_are_nhwc_and_stay_so():
    ref, fast = encoder_pair(modality_specific_stem=True)
    weights = conv_weights(fast)
    # both stems and the body (layer1..4 and their downsample convs)
    assert {'visual.conv1.weight', 'ir_stem.conv1.weight',
            'visual.layer4.0.conv3.weight',
            'visual.layer4.0.downsample.0.weight'} <= set(weights)
    for name, p in weights.items():
        assert p.is_contiguous(memory_format=CL), name
    # (a 1x1 conv's weight is both NCHW- and NHWC-contiguous; a 3x3 one is
    # NHWC only)
    assert not weights['visual.conv1.weight'].is_contiguous()
    for name, p in conv_weights(ref).items():
        assert p.is_contiguous(), name
    # the load above copied into the NHWC tensors, keeping their layout;
    # so do sync_ir_stem and a second load
    fast.sync_ir_stem()
    fast.load_state_dict(ref.state_dict())
    assert all(
        p.is_contiguous(memory_format=CL)
        for p in conv_weights(fast).values())
    # the state dict matches the default layout's, key by key and value
    # by value, so checkpoints move freely between the two
    for key, value in fast.state_dict().items():
        assert torch.equal(value, ref.state_dict()[key]), key


@pytest.mark.parametrize('stem', [False, True])
@pytest.mark.parametrize('train', [False, True])
def test_outputs_and_gradients_equal_default_layout(stem, train):
    ref, fast = encoder_pair(modality_specific_stem=stem)
    ref.train(train)
    fast.train(train)
    x = torch.randn(6, 3, 64, 32)
    modality = torch.tensor([0, 1, 0, 1, 1, 0]) if stem else None
    x_ref = x.clone().requires_grad_()
    x_fast = x.clone().requires_grad_()
    feat_ref, proj_ref = ref(x_ref, modality=modality)
    feat, proj = fast(x_fast, modality=modality)
    assert feat.is_contiguous(memory_format=CL)  # NHWC end to end
    torch.testing.assert_close(feat, feat_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(proj, proj_ref, rtol=1e-5, atol=1e-5)
    (feat.square().mean() + proj.sum()).backward()
    (feat_ref.square().mean() + proj_ref.sum()).backward()
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-4,
                               atol=1e-6)
    # Weight gradients: the weight's layout, values equal up to float32
    # rounding of sums taken in another order. Judged against the largest
    # gradient: some are ~0 by construction (open_clip zero-initialises
    # each block's last BatchNorm weight) and then pure rounding noise.
    grads_ref = dict(ref.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in ref.parameters()
                if p.grad is not None)
    for name, p in fast.named_parameters():
        if p.grad is None:
            assert grads_ref[name].grad is None, name
            continue
        torch.testing.assert_close(
            p.grad, grads_ref[name].grad, rtol=1e-4, atol=1e-5 * scale)
    if train:  # BatchNorm running statistics moved alike
        for (name, a), b in zip(fast.named_buffers(), ref.buffers()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_vit_refuses_channels_last():
    with pytest.raises(ValueError, match='channels_last=True applies to the '
                       r'RN \(ModifiedResNet\) conv trunk'):
        MODELS.build(
            dict(
                type='CLIPImageEncoder',
                arch=VIT,
                input_size=(32, 16),
                stride_size=8,
                channels_last=True))
    # the default stays usable for a ViT
    MODELS.build(
        dict(
            type='CLIPImageEncoder',
            arch=VIT,
            input_size=(32, 16),
            stride_size=8,
            channels_last=False))


@pytest.mark.parametrize('name, expected', [
    ('clip_vireid_rn50', True),
    ('csdn_rn50', True),
    ('eees_rn50', True),
    ('clip4vireid_rn50', True),
    ('clip_vireid_tiny_rn', None),
    ('clip_vireid_tiny_vit', None),
])
def test_model_configs(name, expected):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'models', f'{name}.py'))
    assert cfg.model.image_encoder.get('channels_last') is expected
    # the benchmark's reference variant switches it off from the config
    cfg.merge_from_dict({'model.image_encoder.channels_last': False})
    assert cfg.model.image_encoder.channels_last is False
