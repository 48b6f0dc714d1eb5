# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/analysis_tools/get_flops.py against a hand count of the toy CLIP."""
import importlib.util
import os.path as osp
import re

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'get_flops',
        osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'get_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _conv(cin, cout, k, h, w):
    return cin * cout * k * k * h * w


def modified_resnet_macs(width, height, img_w, embed_dim, last_stride=1):
    """Multiply-adds of open_clip's ModifiedResNet with one Bottleneck per
    stage (layers=(1, 1, 1, 1)), counted by hand from its definition:
    3-conv stem (the first with stride 2) and a 2x2 average pool; each
    Bottleneck is 1x1 -> 3x3 -> (avg-pool for stride) -> 1x1 (x4), with a
    (pool + 1x1) downsample; the attention pool projects every token (the
    layer4 grid plus the mean token) to q, k, v, attends, and projects to
    embed_dim. BatchNorms, ReLUs and pools are left out (< 1 %)."""
    h, w = height // 2, img_w // 2
    macs = _conv(3, width // 2, 3, h, w) + _conv(width // 2, width // 2, 3, h,
                                                 w)
    macs += _conv(width // 2, width, 3, h, w)
    h, w = h // 2, w // 2
    inplanes = width
    for i, stride in enumerate((1, 2, 2, last_stride)):
        planes = width * 2**i
        macs += _conv(inplanes, planes, 1, h, w)
        macs += _conv(planes, planes, 3, h, w)
        h, w = h // stride, w // stride
        macs += _conv(planes, planes * 4, 1, h, w)
        if stride > 1 or inplanes != planes * 4:
            macs += _conv(inplanes, planes * 4, 1, h, w)
        inplanes = planes * 4
    tokens, dim = h * w + 1, width * 32
    macs += 3 * tokens * dim * dim  # q, k, v
    macs += 2 * tokens * tokens * dim  # q k^T, attn v
    macs += tokens * dim * embed_dim  # c_proj
    return macs


def text_transformer_macs(tokens, width, layers, embed_dim):
    """Per layer: q/k/v and output projections (4 L d^2), the MLP
    (2 x L x d x 4d) and the attention products (2 L^2 d); then the
    projection of the pooled token."""
    per_layer = 12 * tokens * width * width + 2 * tokens * tokens * width
    return layers * per_layer + width * embed_dim


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, text
    return int(match.group(1).replace(',', ''))


def test_flops_match_a_hand_count(capsys):
    tool.main([TOY])
    out = capsys.readouterr().out
    assert 'Image encoder (CLIPImageEncoder), input 1x3x64x32:' in out
    image = _number(r'FLOPs: \S+ per image \(([\d,]+)\)', out)
    # the toy's tiny RN: width 8, 64x32, layer4 stride 1, embed_dim 64
    hand = modified_resnet_macs(8, 64, 32, 64)
    assert image == pytest.approx(hand, rel=0.10)
    # the prompt 'A photo of a X X X X person.' is 12 tokens with SOT/EOT
    assert 'one prompt of 12 tokens' in out
    text = _number(r'FLOPs: \S+ per prompt \(([\d,]+)\)', out)
    assert text == pytest.approx(
        text_transformer_macs(12, 64, 2, 64), rel=0.10)
    params = _number(r'Image encoder.*\n.*\n  Params: \S+ \(([\d,]+)\)', out)
    assert 300_000 < params < 400_000
    assert "all 43 identities' prompts" in out
    assert 'prompt (5 epochs): trains prompt_learner; input: cached' in out
    assert 'finetune (35 epochs): trains image_encoder, head' in out


def test_shape_builds_the_encoder_for_it(capsys):
    tool.main([TOY, '--shape', '128', '64'])
    out = capsys.readouterr().out
    assert 'input 1x3x128x64' in out
    image = _number(r'FLOPs: \S+ per image \(([\d,]+)\)', out)
    assert image == pytest.approx(
        modified_resnet_macs(8, 128, 64, 64), rel=0.10)
