# Copyright (c) mmvireid contributors. All rights reserved.
"""Tests of the CLIP image encoder and the open_clip build/load helpers.

Tiny random-init CLIPs keep them fast; one test builds the real RN50
architecture (no weights) at 288x144.
"""
import copy
import math
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.models.backbones import CLIPImageEncoder
from mmvireid.models.text import CLIPTextEncoder
from mmvireid.models.utils import (build_open_clip,
                                   check_pretrained_activation,
                                   convert_openai_torchscript,
                                   infer_pos_embed_grid, load_clip_state_dict,
                                   load_clip_weights, resize_grid_pos_embed,
                                   resnet_grid_size)
from mmvireid.registry import MODELS

TEXT_CFG = dict(
    context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
VIT = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(128, 64), patch_size=16, width=64, layers=2,
        head_width=32),
    text_cfg=TEXT_CFG)
# ModifiedResNet: width 16 -> 512 output channels, 32 heads of 16.
RN = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(128, 64), layers=(1, 1, 1, 1), width=16, head_width=16),
    text_cfg=TEXT_CFG)


def _arch(base, **vision):
    arch = copy.deepcopy(base)
    arch['vision_cfg'].update(vision)
    return arch


def manual_bilinear(grid, out_h, out_w):
    """Bilinear resize of an [h, w, C] array with half-pixel centres (what
    F.interpolate(align_corners=False) does), one output cell at a time."""
    in_h, in_w, _ = grid.shape
    out = np.zeros((out_h, out_w, grid.shape[2]), dtype=np.float64)
    for i in range(out_h):
        sy = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = int(math.floor(sy))
        y1 = min(y0 + 1, in_h - 1)
        wy = sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = int(math.floor(sx))
            x1 = min(x0 + 1, in_w - 1)
            wx = sx - x0
            top = (1 - wx) * grid[y0, x0] + wx * grid[y0, x1]
            bottom = (1 - wx) * grid[y1, x0] + wx * grid[y1, x1]
            out[i, j] = (1 - wy) * top + wy * bottom
    return out


def manual_resize(pos_embed, src, dst):
    """CLS row kept, grid rows resized by manual_bilinear."""
    pos = pos_embed.detach().double().numpy()
    grid = pos[1:].reshape(src[0], src[1], -1)
    new = manual_bilinear(grid, *dst).reshape(dst[0] * dst[1], -1)
    return torch.from_numpy(np.concatenate([pos[:1], new])).float()


# ---------------------------------------------------------------------- #
# helpers
# ---------------------------------------------------------------------- #
def test_resize_grid_pos_embed_known_values():
    # 1x2 grid [0, 4] -> 1x4: sample points -0.25 (clamped), 0.25, 0.75,
    # 1.25 (clamped) -> [0, 1, 3, 4]; the CLS row is copied.
    pos = torch.tensor([[7.], [0.], [4.]])
    out = resize_grid_pos_embed(pos, (1, 2), (1, 4))
    assert out.squeeze(1).tolist() == [7., 0., 1., 3., 4.]
    # Same grid: an unchanged copy.
    same = resize_grid_pos_embed(pos, (1, 2), (1, 2))
    assert torch.equal(same, pos) and same.data_ptr() != pos.data_ptr()
    with pytest.raises(ValueError, match='3 tokens, which is not 1 extra'):
        resize_grid_pos_embed(pos, (2, 2), (1, 4))


def test_resize_grid_pos_embed_matches_manual_bilinear():
    torch.manual_seed(0)
    pos = torch.randn(1 + 7 * 7, 5)
    out = resize_grid_pos_embed(pos, (7, 7), (18, 9))
    assert out.shape == (1 + 18 * 9, 5)
    torch.testing.assert_close(
        out, manual_resize(pos, (7, 7), (18, 9)), rtol=0, atol=1e-5)


def test_infer_pos_embed_grid():
    assert infer_pos_embed_grid(196) == (14, 14)
    # 162 = 18x9 = 27x6 = ...: the reference aspect ratio decides.
    assert infer_pos_embed_grid(162, ref_grid=(16, 8)) == (18, 9)
    assert infer_pos_embed_grid(50, ref_grid=(10, 5)) == (10, 5)
    with pytest.raises(ValueError, match='do not form a square grid'):
        infer_pos_embed_grid(162)


def test_resnet_grid_size():
    assert resnet_grid_size((288, 144), 1) == (18, 9)
    assert resnet_grid_size((288, 144), 2) == (9, 4)
    assert resnet_grid_size((256, 128), 1) == (16, 8)
    assert resnet_grid_size((224, 224), 2) == (7, 7)
    with pytest.raises(ValueError, match='last_stride must be 1 or 2'):
        resnet_grid_size((288, 144), 4)


def test_build_open_clip_rectangular_resnet():
    # open_clip's ModifiedResNet only takes an int image size; the builder
    # fixes the attention pool for a rectangular one.
    model = build_open_clip(RN)
    assert model.visual.attnpool.positional_embedding.shape == (1 + 4 * 2, 512)
    assert model.visual.attnpool.grid_size == (4, 2)
    out = model.encode_image(torch.randn(2, 3, 128, 64))
    assert out.shape == (2, 64)
    with pytest.raises(KeyError, match=r"missing \['text_cfg'\]"):
        build_open_clip(dict(embed_dim=64, vision_cfg=VIT['vision_cfg']))
    with pytest.raises(ValueError, match='Unknown open_clip architecture'):
        build_open_clip('RN51')


# ---------------------------------------------------------------------- #
# ViT
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('stride, grid', [(16, (8, 4)), (12, (10, 5)),
                                          (8, (15, 7))])
def test_vit_shapes_and_overlapping_grid(stride, grid):
    enc = CLIPImageEncoder(VIT, input_size=(128, 64), stride_size=stride)
    assert enc.grid_size == grid  # ((H - 16) // s + 1, (W - 16) // s + 1)
    assert enc.visual.conv1.stride == (stride, stride)
    assert enc.visual.positional_embedding.shape == (1 + grid[0] * grid[1], 64)
    assert (enc.feat_dim, enc.proj_dim, enc.feat_is_map) == (64, 64, False)
    enc.eval()
    x = torch.randn(3, 3, 128, 64)
    feat, proj = enc(x)
    assert feat.shape == (3, 64) and proj.shape == (3, 64)
    # Our body equals open_clip's own forward of the adapted tower.
    with torch.no_grad():
        torch.testing.assert_close(proj, enc.visual(x))
    torch.testing.assert_close(proj, feat @ enc.visual.proj)


def test_vit_pos_embed_resize_keeps_cls_and_is_bilinear():
    torch.manual_seed(0)
    original = build_open_clip(VIT).visual.positional_embedding.detach()
    torch.manual_seed(0)
    enc = CLIPImageEncoder(VIT, input_size=(128, 64), stride_size=12)
    resized = enc.visual.positional_embedding.detach()
    assert torch.equal(resized[0], original[0])
    torch.testing.assert_close(
        resized, manual_resize(original, (8, 4), (10, 5)), rtol=0, atol=1e-5)


def test_vit_input_checks():
    enc = CLIPImageEncoder(VIT, input_size=(128, 64))
    with pytest.raises(ValueError, match=r'\(H, W\) = \(128, 64\)'):
        enc(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='exceeds the patch size'):
        CLIPImageEncoder(VIT, input_size=(128, 64), stride_size=20)


def test_vit_camera_embedding():
    torch.manual_seed(0)
    enc = CLIPImageEncoder(
        VIT, input_size=(128, 64), camera_embedding=dict(num_cameras=3))
    assert enc.cam_embed.shape == (3, 64) and enc.cam_coe == 3.0
    # trunc_normal(std=0.02) with the default +-2 absolute cut.
    assert 0.005 < enc.cam_embed.std().item() < 0.04
    enc.eval()
    x = torch.randn(1, 3, 128, 64).expand(2, -1, -1, -1)
    with torch.no_grad():
        same = enc(x, cam_ids=torch.tensor([0, 0]))[1]
        mixed = enc(x, cam_ids=torch.tensor([0, 2]))[1]
    torch.testing.assert_close(same[0], same[1])
    torch.testing.assert_close(mixed[0], same[0])
    assert not torch.allclose(mixed[1], same[1], atol=1e-4)

    # Reference: SIE only shifts the class token, before the positional
    # embedding, so open_clip's forward with class_embedding + 3 * e_c
    # gives the same result.
    visual = copy.deepcopy(enc.visual)
    with torch.no_grad():
        visual.class_embedding.add_(3.0 * enc.cam_embed[2])
        torch.testing.assert_close(mixed[1:], visual(x[1:]))

    with pytest.raises(ValueError, match='pass `cam_ids`'):
        enc(x)
    with pytest.raises(ValueError, match=r'cam_ids must lie in \[0, 3\)'):
        enc(x, cam_ids=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='ViT encoders only'):
        CLIPImageEncoder(
            RN, input_size=(128, 64), camera_embedding=dict(num_cameras=3))
    with pytest.raises(KeyError, match='camera_embedding must be'):
        CLIPImageEncoder(
            VIT, input_size=(128, 64), camera_embedding=dict(cams=3))


def test_vit_without_sie_and_intermediate_feature():
    torch.manual_seed(0)
    enc = CLIPImageEncoder(
        VIT, input_size=(128, 64), camera_embedding=dict(num_cameras=3))
    enc.eval()
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        # with_sie=False (CLIP-ReID's prompt-stage cache) needs no cam_ids
        # and equals the plain open_clip tower
        _, proj = enc(x, with_sie=False)
        torch.testing.assert_close(proj, enc.visual(x))
        mid, feat, proj_sie = enc(x, cam_ids=torch.tensor([1, 2]),
                                  return_mid=True)
        assert not torch.allclose(proj_sie, proj, atol=1e-4)
        # mid: the class token entering the last block, computed here
        # block by block from open_clip's modules
        visual = enc.visual
        tokens = visual.conv1(x).flatten(2).transpose(1, 2)
        cls = visual.class_embedding + 3.0 * enc.cam_embed[[1, 2]]
        tokens = torch.cat([cls.unsqueeze(1), tokens], dim=1)
        tokens = visual.ln_pre(tokens + visual.positional_embedding)
        for block in visual.transformer.resblocks[:-1]:
            tokens = block(tokens)
        torch.testing.assert_close(mid, tokens[:, 0])
        assert mid.shape == (2, 64)
        torch.testing.assert_close(
            feat, enc(x, cam_ids=torch.tensor([1, 2]))[0])


def test_resnet_intermediate_feature_is_pooled_layer3():
    torch.manual_seed(0)
    enc = CLIPImageEncoder(RN, input_size=(128, 64)).eval()
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        mid, feat, proj = enc(x, return_mid=True)
        visual = enc.visual
        layer3 = visual.layer3(visual.layer2(visual.layer1(visual.stem(x))))
        # width 16: layer3 has 16 * 16 = 256 channels
        assert mid.shape == (2, 256)
        torch.testing.assert_close(mid, layer3.mean(dim=(2, 3)))
        feat2, proj2 = enc(x)
        torch.testing.assert_close(feat, feat2)
        torch.testing.assert_close(proj, proj2)


# ---------------------------------------------------------------------- #
# ResNet
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('last_stride, grid', [(1, (8, 4)), (2, (4, 2))])
def test_resnet_shapes(last_stride, grid):
    enc = CLIPImageEncoder(RN, input_size=(128, 64), last_stride=last_stride)
    assert enc.grid_size == grid
    assert (enc.feat_dim, enc.proj_dim, enc.feat_is_map) == (512, 64, True)
    enc.eval()
    x = torch.randn(2, 3, 128, 64)
    feat, proj = enc(x)
    assert feat.shape == (2, 512) + grid
    assert proj.shape == (2, 64)
    with torch.no_grad():
        torch.testing.assert_close(proj, enc.visual(x))


def test_resnet_attnpool_resize_is_bilinear():
    square = _arch(RN, image_size=128)  # a 4x4 attention-pool grid
    torch.manual_seed(0)
    original = build_open_clip(square).visual.attnpool.positional_embedding
    torch.manual_seed(0)
    enc = CLIPImageEncoder(square, input_size=(128, 64), last_stride=1)
    resized = enc.visual.attnpool.positional_embedding.detach()
    assert resized.shape == (1 + 8 * 4, 512)
    assert torch.equal(resized[0], original[0].detach())
    torch.testing.assert_close(
        resized, manual_resize(original, (4, 4), (8, 4)), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- #
# modality-specific stems
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('arch', [RN, VIT], ids=['resnet', 'vit'])
def test_modality_specific_stem(arch):
    torch.manual_seed(0)
    enc = CLIPImageEncoder(
        arch, input_size=(128, 64), modality_specific_stem=True)
    ir_conv = enc.ir_stem.conv1 if enc.arch_type == 'resnet' else enc.ir_stem
    assert ir_conv is not enc.visual.conv1
    assert torch.equal(ir_conv.weight, enc.visual.conv1.weight)
    if enc.arch_type == 'vit':
        assert ir_conv.stride == enc.visual.conv1.stride
    x = torch.randn(4, 3, 128, 64)
    vis, ir = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x, vis)[1], enc(x, ir)[1])
        ir_conv.weight.mul_(-1.5)  # the two stems now differ
        vis_out, ir_out = enc(x, vis)[1], enc(x, ir)[1]
        assert not torch.allclose(vis_out, ir_out, atol=1e-4)
        # A visible image never touches the IR stem and vice versa.
        ref = CLIPImageEncoder(arch, input_size=(128, 64))
        ref.load_state_dict(enc.state_dict(), strict=False)
        ref.eval()
        torch.testing.assert_close(vis_out, ref(x)[1])

        # Mixed batch == the parts run separately, in the original order.
        modality = torch.tensor([1, 0, 0, 1])
        mixed = enc(x, modality)[1]
        torch.testing.assert_close(mixed[[1, 2]], vis_out[[1, 2]])
        torch.testing.assert_close(mixed[[0, 3]], ir_out[[0, 3]])

    # In train mode each stem's BatchNorm sees only its own modality.
    enc.train()
    stem_mixed = enc.forward_stem(x, modality)
    stem_vis = enc.forward_stem(x[[1, 2]], torch.tensor([0, 0]))
    stem_ir = enc.forward_stem(x[[0, 3]], torch.tensor([1, 1]))
    torch.testing.assert_close(stem_mixed[[1, 2]], stem_vis)
    torch.testing.assert_close(stem_mixed[[0, 3]], stem_ir)
    # Gradients of the re-assembled batch reach both stems.
    enc.zero_grad()
    stem_mixed.sum().backward()
    assert enc.visual.conv1.weight.grad.abs().sum() > 0
    assert ir_conv.weight.grad.abs().sum() > 0

    with pytest.raises(ValueError, match='needs `modality`'):
        enc(x)
    with pytest.raises(ValueError, match=r'must be 0 \(visible\) or 1'):
        enc(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match='modality has 2 entries'):
        enc(x, torch.tensor([0, 1]))


def test_frozen_encoder_keeps_eval_mode():
    enc = CLIPImageEncoder(RN, input_size=(128, 64), frozen=True)
    assert not any(p.requires_grad for p in enc.parameters())
    parent = nn.Sequential(enc)
    parent.train()
    assert not enc.training and not enc.visual.bn1.training
    stats = enc.visual.bn1.running_mean.clone()
    enc(torch.randn(2, 3, 128, 64))
    assert torch.equal(enc.visual.bn1.running_mean, stats)


def test_registry_build():
    enc = MODELS.build(
        dict(type='CLIPImageEncoder', arch=VIT, input_size=(128, 64)))
    assert isinstance(enc, CLIPImageEncoder)


# ---------------------------------------------------------------------- #
# pretrained loading
# ---------------------------------------------------------------------- #
def _save_clip(arch, path, seed=1):
    torch.manual_seed(seed)
    model = build_open_clip(arch)
    state = model.state_dict()
    torch.save(state, path)
    return state


def test_load_vit_checkpoint_from_another_grid(tmp_path):
    # A square 64x64 checkpoint (4x4 grid) into a 128x64 model with
    # overlapping patches (10x5 grid) and two stems.
    ckpt = _save_clip(_arch(VIT, image_size=64), tmp_path / 'vit.pth')
    enc = CLIPImageEncoder(
        VIT,
        pretrained=str(tmp_path / 'vit.pth'),
        input_size=(128, 64),
        stride_size=12,
        modality_specific_stem=True)
    enc.init_weights()
    for key, value in enc.visual.state_dict().items():
        if key == 'positional_embedding':
            continue
        assert torch.equal(value, ckpt['visual.' + key]), key
    torch.testing.assert_close(
        enc.visual.positional_embedding.detach(),
        manual_resize(ckpt['visual.positional_embedding'], (4, 4), (10, 5)),
        rtol=0,
        atol=1e-5)
    assert torch.equal(enc.ir_stem.weight, ckpt['visual.conv1.weight'])


def test_load_nonsquare_checkpoint_infers_its_grid(tmp_path):
    # 128x64 / stride 16 (8x4 = 32 tokens, not a square) into stride 12.
    ckpt = _save_clip(VIT, tmp_path / 'rect.pth')
    enc = CLIPImageEncoder(
        VIT,
        pretrained=str(tmp_path / 'rect.pth'),
        input_size=(128, 64),
        stride_size=12)
    enc.init_weights()
    torch.testing.assert_close(
        enc.visual.positional_embedding.detach(),
        manual_resize(ckpt['visual.positional_embedding'], (8, 4), (10, 5)),
        rtol=0,
        atol=1e-5)


def test_load_resnet_checkpoint(tmp_path):
    square = _arch(RN, image_size=128)
    ckpt = _save_clip(square, tmp_path / 'rn.pth')
    enc = CLIPImageEncoder(
        RN,
        pretrained=str(tmp_path / 'rn.pth'),
        input_size=(128, 64),
        last_stride=1,
        modality_specific_stem=True)
    enc.init_weights()
    for key, value in enc.visual.state_dict().items():
        if key != 'attnpool.positional_embedding':
            assert torch.equal(value, ckpt['visual.' + key]), key
    torch.testing.assert_close(
        enc.visual.attnpool.positional_embedding.detach(),
        manual_resize(ckpt['visual.attnpool.positional_embedding'], (4, 4),
                      (8, 4)),
        rtol=0,
        atol=1e-5)
    for key, value in enc.ir_stem.state_dict().items():
        assert torch.equal(value, ckpt['visual.' + key]), key


def test_parent_init_cfg_does_not_overwrite_clip(tmp_path):
    ckpt = _save_clip(VIT, tmp_path / 'vit.pth')

    class Model(BaseModule):

        def __init__(self):
            super().__init__(
                init_cfg=dict(type='Normal', layer='Linear', std=5.0))
            self.backbone = CLIPImageEncoder(
                VIT,
                pretrained=str(tmp_path / 'vit.pth'),
                input_size=(128, 64))
            self.head = nn.Linear(64, 3)

    model = Model()
    model.init_weights()
    key = 'transformer.resblocks.0.mlp.c_fc.weight'
    assert torch.equal(model.backbone.visual.state_dict()[key],
                       ckpt['visual.' + key])
    assert model.head.weight.std() > 1.0  # the parent's init did run


def test_load_wrapped_and_safetensors(tmp_path):
    from safetensors.torch import save_file
    ckpt = _save_clip(VIT, tmp_path / 'plain.pth')
    torch.save({'state_dict': {
        'module.' + k: v
        for k, v in ckpt.items()
    }}, tmp_path / 'wrapped.pth')
    save_file({
        k: v.contiguous()
        for k, v in ckpt.items()
    }, str(tmp_path / 'w.safetensors'))
    for name in ('wrapped.pth', 'w.safetensors'):
        state = load_clip_state_dict(str(tmp_path / name))
        assert state.keys() == ckpt.keys()
        assert all(torch.equal(state[k], ckpt[k]) for k in ckpt)
    # A full CLIP loads too (text + visual + logit_scale).
    model = build_open_clip(VIT, pretrained=str(tmp_path / 'w.safetensors'))
    assert torch.equal(model.logit_scale, ckpt['logit_scale'])


def test_strict_loading_reports_keys(tmp_path):
    ckpt = _save_clip(VIT, tmp_path / 'vit.pth')
    broken = dict(ckpt)
    del broken['visual.ln_pre.weight']
    broken['visual.extra.weight'] = torch.zeros(1)
    broken['visual.proj'] = torch.zeros(64, 32)
    torch.save(broken, tmp_path / 'broken.pth')
    enc = CLIPImageEncoder(
        VIT, pretrained=str(tmp_path / 'broken.pth'), input_size=(128, 64))
    before = copy.deepcopy(enc.visual.state_dict())
    with pytest.raises(RuntimeError) as err:
        enc.init_weights()
    msg = str(err.value)
    assert '1 missing keys [ln_pre.weight]' in msg
    assert '1 unexpected keys [extra.weight]' in msg
    assert 'proj: checkpoint (64, 32) vs model (64, 64)' in msg
    # Nothing was copied before the error.
    assert all(
        torch.equal(v,
                    enc.visual.state_dict()[k]) for k, v in before.items())
    # Non-strict: loads what matches.
    report = load_clip_weights(
        enc.visual,
        str(tmp_path / 'broken.pth'),
        prefix_filter='visual.',
        strict=False)
    assert report['missing_keys'] == ['ln_pre.weight']
    assert torch.equal(enc.visual.conv1.weight, ckpt['visual.conv1.weight'])


def test_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        load_clip_state_dict(str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match='needs a named architecture'):
        load_clip_state_dict('openai', arch=VIT)
    # Unknown tags are rejected before any download is attempted.
    with pytest.raises(ValueError, match="its tags are .*'openai'"):
        load_clip_state_dict('not_a_tag', arch='RN50')


def test_tag_activation_mismatch_is_refused():
    # Checked from open_clip's tag table, before building or downloading.
    check_pretrained_activation('ViT-B-16', 'openai', quick_gelu=True)
    check_pretrained_activation(VIT, 'weights.pth', quick_gelu=True)
    with pytest.raises(ValueError, match='set quick_gelu=False'):
        CLIPImageEncoder('ViT-B-16', pretrained='laion2b_s34b_b88k')
    with pytest.raises(ValueError, match='set quick_gelu=True'):
        CLIPTextEncoder('RN50', pretrained='openai', quick_gelu=False)


class _OpenAILike(nn.Module):

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 3)
        self.register_buffer('input_resolution', torch.tensor(224))

    def forward(self, x):
        return self.proj(x)


@pytest.mark.filterwarnings('ignore:`torch.jit:FutureWarning')
def test_torchscript_refused_then_converted(tmp_path):
    module = _OpenAILike()
    path = str(tmp_path / 'RN50.pt')
    torch.jit.save(torch.jit.script(module), path)
    with pytest.raises(RuntimeError) as err:
        load_clip_state_dict(path)
    msg = str(err.value)
    assert 'is a TorchScript archive' in msg
    assert 'convert_openai_torchscript' in msg
    assert 'allow_torchscript=True' in msg

    state = load_clip_state_dict(path, allow_torchscript=True)
    assert set(state) == {'proj.weight', 'proj.bias'}

    dst = str(tmp_path / 'RN50.pth')
    convert_openai_torchscript(path, dst)
    converted = torch.load(dst, weights_only=True)
    assert set(converted) == {'proj.weight', 'proj.bias'}
    assert torch.equal(converted['proj.weight'], module.proj.weight)


# ---------------------------------------------------------------------- #
# the real architecture
# ---------------------------------------------------------------------- #
def test_real_rn50_architecture_at_288x144():
    start = time.perf_counter()
    enc = CLIPImageEncoder('RN50', input_size=(288, 144), last_stride=1)
    enc.eval()
    with torch.no_grad():
        feat, proj = enc(torch.randn(2, 3, 288, 144))
    elapsed = time.perf_counter() - start
    assert feat.shape == (2, 2048, 18, 9)
    assert proj.shape == (2, 1024)
    assert enc.visual.attnpool.positional_embedding.shape == (1 + 18 * 9, 2048)
    assert (enc.feat_dim, enc.proj_dim) == (2048, 1024)
    assert elapsed < 20, f'real RN50 build + forward took {elapsed:.1f} s'


def test_text_and_image_encoders_share_one_checkpoint(tmp_path):
    ckpt = _save_clip(VIT, tmp_path / 'clip.pth')
    text = CLIPTextEncoder(VIT, pretrained=str(tmp_path / 'clip.pth'))
    text.init_weights()
    image = CLIPImageEncoder(
        VIT, pretrained=str(tmp_path / 'clip.pth'), input_size=(128, 64))
    image.init_weights()
    assert torch.equal(text.token_embedding.weight,
                       ckpt['token_embedding.weight'])
    assert torch.equal(image.visual.proj, ckpt['visual.proj'])
