# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/deployment/export_onnx.py: dynamic batch, parity with PyTorch."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'export_onnx',
        osp.join(REPO_ROOT, 'tools', 'deployment', 'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _build(config):
    from mmvireid.registry import MODELS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmvireid'):
        return MODELS.build(
            Config.fromfile(osp.join(REPO_ROOT, 'configs', config)).model)


def _predict(model, images, modality):
    """The model's own test-time output for data samples of one modality."""
    samples = [
        DataSample(metainfo=dict(modality=modality))
        for _ in range(images.shape[0])
    ]
    with torch.no_grad():
        out = model.predict(images, samples)
    return torch.stack([s.pred_feat for s in out]).numpy()


def test_cli_export_parity_and_dynamic_batch(tmp_path, capsys):
    model = _build('clip_vireid_toy.py')
    ckpt = str(tmp_path / 'toy.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'onnx' / 'toy.onnx')
    rc = tool.main([
        osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py'), ckpt, '--out',
        out
    ])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    line = [ln for ln in printed.splitlines() if 'max abs difference' in ln]
    assert len(line) == 1
    assert float(line[0].split(': ')[1].split()[0]) < 1e-4

    graph = onnx.load(out).graph
    assert [i.name for i in graph.input] == ['images']
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == 'batch'  # symbolic, not a fixed size
    assert [d.dim_value for d in dims[1:]] == [3, 64, 32]
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['mmvireid.input_size'] == '64x32'
    assert meta['mmvireid.mean'] == '123.675,116.28,103.53'
    assert meta['mmvireid.std'] == '58.395,57.12,57.375'
    assert meta['mmvireid.modality'] == 'vis'

    # batch sizes other than the traced one (2), against model.predict
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    model.eval()
    for n in (1, 5):
        images = torch.randn(
            n, 3, 64, 32, generator=torch.Generator().manual_seed(n))
        (feats, ) = session.run(['feats'], {'images': images.numpy()})
        ref = _predict(model, images, 'vis')
        assert feats.shape == (n, 320)
        np.testing.assert_allclose(feats, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(
            np.linalg.norm(feats, axis=1), np.ones(n), atol=1e-5)


def test_modality_specific_stem_exports_the_chosen_branch(tmp_path):
    """CSDN's stems: the IR graph runs the IR stem, the VIS graph the
    visible one (they start as copies, so the IR stem is perturbed)."""
    model = _build('csdn_toy.py').eval()
    assert model.image_encoder.modality_specific_stem
    with torch.no_grad():
        for p in model.image_encoder.ir_stem.parameters():
            p.add_(0.05 * torch.randn_like(p))
    images = torch.randn(3, 3, *model.image_encoder.input_size)
    outputs = {}
    for modality in ('vis', 'ir'):
        out = str(tmp_path / f'{modality}.onnx')
        with pytest.warns(UserWarning, match=f"exporting the '{modality}'"):
            wrapper = tool.export_onnx(model, out, modality)
        assert tool.check_parity(wrapper, out) < 1e-4
        session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
        (outputs[modality], ) = session.run(['feats'],
                                            {'images': images.numpy()})
        np.testing.assert_allclose(
            outputs[modality],
            _predict(model, images, modality),
            atol=1e-4,
            rtol=0)
    assert np.abs(outputs['vis'] - outputs['ir']).max() > 1e-3


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    rc = tool.main([
        osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py'),
        str(tmp_path / 'none.pth'), '--out',
        str(tmp_path / 'x.onnx')
    ])
    assert rc == 1
    assert 'none.pth" does not exist' in capsys.readouterr().err


def test_wrapper_matches_extract_feat():
    """The exported function is predict's: extract_feat + L2 norm."""
    model = _build('clip_vireid_toy.py').eval()
    wrapper = tool.FeatureExportWrapper(model, 'ir')
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        ref = F.normalize(
            model.extract_feat(images,
                               dict(modality=torch.ones(2, dtype=torch.long))),
            dim=1)
        torch.testing.assert_close(wrapper(images), ref)
    with pytest.raises(ValueError, match='modality must be "vis" or "ir"'):
        tool.FeatureExportWrapper(model, 'rgb')


def test_existing_out_is_refused_without_overwrite(tmp_path, capsys):
    """Like every other tool: an existing --out is named and kept, and
    nothing is written; --overwrite replaces it."""
    model = _build('clip_vireid_toy.py')
    ckpt = str(tmp_path / 'toy.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), ckpt)
    out = tmp_path / 'out' / 'toy.onnx'
    out.parent.mkdir()
    out.write_bytes(b'previous export')
    config = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')
    rc = tool.main([config, ckpt, '--out', str(out), '--no-check'])
    assert rc == 1
    err = capsys.readouterr().err
    assert f'"{out}" exists' in err and '--overwrite' in err
    assert out.read_bytes() == b'previous export'
    assert sorted(p.name for p in out.parent.iterdir()) == ['toy.onnx']
    rc = tool.main(
        [config, ckpt, '--out', str(out), '--no-check', '--overwrite'])
    assert rc == 0
    assert onnx.load(str(out)).graph.input[0].name == 'images'
