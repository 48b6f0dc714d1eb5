# Copyright (c) mmvireid contributors. All rights reserved.
"""A checkpoint that does not fit is an error, never a half-random model."""
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy_utils import REPO_ROOT

from mmvireid.engine.hooks import AtomicCheckpointHook
from mmvireid.utils.checkpoint import (CheckpointMismatchError,
                                       NotACheckpointError,
                                       checkpoint_model_type,
                                       describe_mismatch, load_model_checkpoint,
                                       safe_load_checkpoint)

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')


def _model():
    model = nn.Module()
    model.image_encoder = nn.Linear(4, 3)
    model.head = nn.Linear(3, 5)
    return model


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'weights.pth'
    # e.g. an HTML error page saved under the checkpoint's name
    path.write_bytes(b'<html>404 Not Found</html>' + os.urandom(64))
    with pytest.raises(NotACheckpointError,
                       match=r'weights\.pth is not a PyTorch checkpoint'):
        safe_load_checkpoint(str(path))


def test_corrupt_pickle_is_not_called_unsafe(tmp_path):
    path = tmp_path / 'broken.pth'
    path.write_bytes(b'\x80\x02' + b'\xff' * 30)
    with pytest.raises(RuntimeError, match='corrupt or truncated') as exc:
        safe_load_checkpoint(str(path))
    assert 'execute code' not in str(exc.value)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    ckpt = dict(
        meta=dict(cfg="model = dict(\n    type='EEES',\n    num_classes=5)"),
        state_dict={
            'module.head.weight': torch.zeros(7, 3),
            'head.bias': torch.zeros(5),
            'desc_proj.weight': torch.zeros(2, 2),
        })
    assert checkpoint_model_type(ckpt) == 'EEES'
    text = describe_mismatch('x.pth', ckpt, _model())
    assert text.splitlines() == [
        'Checkpoint "x.pth" does not fit the Module model of this config:',
        "  it was saved from a EEES model (another method's checkpoint)",
        '  2 tensor(s) of the model are missing from it: '
        'image_encoder.bias, image_encoder.weight',
        '  1 tensor(s) in it are not in the model: desc_proj.weight',
        '  1 tensor(s) have another shape: head.weight (checkpoint (7, 3), '
        'model (5, 3))',
    ]
    path = str(tmp_path / 'x.pth')
    torch.save(ckpt, path)
    model = _model()
    with pytest.raises(CheckpointMismatchError, match='--non-strict'):
        load_model_checkpoint(model, path)
    # non-strict: what fits is loaded, the rest keeps its values
    before = model.image_encoder.weight.clone()
    load_model_checkpoint(model, path, strict=False)
    assert torch.equal(model.head.bias, torch.zeros(5))
    assert torch.equal(model.image_encoder.weight, before)
    assert describe_mismatch('x.pth', dict(state_dict=_model().state_dict()),
                             _model()) is None


def test_resume_from_another_models_checkpoint():
    runner = SimpleNamespace(
        model=_model(), _resume=True, _load_from='other.pth', work_dir='.')
    other = nn.Module()
    other.backbone = nn.Linear(4, 3)
    hook = AtomicCheckpointHook(interval=1)
    with pytest.raises(CheckpointMismatchError,
                       match='Resume with the config this checkpoint was '
                       'trained with'):
        hook.after_load_checkpoint(runner,
                                   dict(state_dict=other.state_dict()))


def _toy_checkpoint(path, drop_prefix=None):
    from mmvireid.registry import MODELS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmvireid'):
        model = MODELS.build(Config.fromfile(TOY_CONFIG).model)
    state = {
        k: v
        for k, v in model.state_dict().items()
        if drop_prefix is None or not k.startswith(drop_prefix)
    }
    torch.save(dict(meta=dict(), state_dict=state), path)


def _test_py(ckpt, data_root, work_dir, *extra):
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'test.py'), TOY_CONFIG, ckpt,
        '--work-dir', work_dir, *extra, '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.dataset.data_root={data_root}',
        'test_evaluator.num_trials=1'
    ]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    return subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_test_py_refuses_a_checkpoint_without_the_image_encoder(
        toy_sysu_root, tmp_path):
    ckpt = str(tmp_path / 'no_encoder.pth')
    _toy_checkpoint(ckpt, drop_prefix='image_encoder.')
    work_dir = str(tmp_path / 'wd')
    proc = _test_py(ckpt, toy_sysu_root, work_dir)
    assert proc.returncode == 1
    assert 'of the model are missing from it: image_encoder.' in proc.stderr
    assert '--non-strict' in proc.stderr
    assert 'Rank-1' not in proc.stdout + proc.stderr
    assert not osp.exists(work_dir)  # refused before anything was written
    # --non-strict evaluates it, and the log names what was not loaded
    proc = _test_py(ckpt, toy_sysu_root, work_dir, '--non-strict')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'Loading the tensors that fit (--non-strict)' in (proc.stdout +
                                                             proc.stderr)


def test_model_type_is_the_models_own_not_a_components():
    # mmengine's pretty_text may print nested components before the type
    text = ("model = dict(\n    data_preprocessor=dict(\n"
            "        type='VIReIDDataPreprocessor', mean=[0.0]),\n"
            "    head=dict(type='BNNeckHead'),\n    type='CSDN')\n"
            "optim_wrapper = dict(type='OptimWrapper')\n")
    assert checkpoint_model_type(dict(meta=dict(cfg=text))) == 'CSDN'
    assert checkpoint_model_type(dict(meta=dict(cfg='model = ('))) is None
    assert checkpoint_model_type(dict(meta=dict())) is None
