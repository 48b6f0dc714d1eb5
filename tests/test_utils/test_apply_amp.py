# Copyright (c) mmvireid contributors. All rights reserved.
"""``--amp``: what ``apply_amp`` does to a config (no GPU needed: CUDA
availability is patched; the wrappers are only configured, not built)."""
import os.path as osp
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from mmvireid.utils.tool_utils import UserInputError, apply_amp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg():
    return Config.fromfile(osp.join(REPO, 'configs/csdn_sysu.py'))


@pytest.mark.parametrize('bf16_ok,asked,expected', [
    (True, 'auto', 'bf16'),
    (False, 'auto', 'fp16'),
    (True, 'fp16', 'fp16'),
    (False, 'bf16', 'bf16'),
])
def test_every_stage_wrapper_and_the_eval_loops(bf16_ok, asked, expected):
    cfg = _cfg()
    with mock.patch.object(torch.cuda, 'is_available', return_value=True), \
            mock.patch.object(torch.cuda, 'is_bf16_supported',
                              return_value=bf16_ok):
        assert apply_amp(cfg, asked) == expected
    for stage in ('prompt', 'fusion', 'finetune'):
        ow = cfg.optim_wrapper[stage]
        assert ow.type == 'AmpOptimWrapper'
        assert ow.dtype == dict(bf16='bfloat16', fp16='float16')[expected]
        # bf16 trains without a GradScaler; fp16 scales dynamically
        assert ow.loss_scale == (dict(enabled=False)
                                 if expected == 'bf16' else 'dynamic')
        # the stage's optimizer and modules are kept
        assert ow.optimizer.type == 'Adam'
        assert 'modules' in ow
    assert cfg.val_cfg.fp16 is True and cfg.test_cfg.fp16 is True


def test_refuses_without_cuda_and_unknown_dtype():
    with mock.patch.object(torch.cuda, 'is_available', return_value=False):
        with pytest.raises(UserInputError, match='needs a CUDA device'):
            apply_amp(_cfg())
    with pytest.raises(UserInputError, match="--amp 'int8'"):
        apply_amp(_cfg(), 'int8')


def test_bf16_wrapper_builds_without_a_scaler_sync():
    """The bf16 wrapper config builds an AmpOptimWrapper whose GradScaler is
    disabled: ``scale`` returns the loss itself."""
    from mmengine.optim import AmpOptimWrapper
    cfg = _cfg()
    with mock.patch.object(torch.cuda, 'is_available', return_value=True), \
            mock.patch.object(torch.cuda, 'is_bf16_supported',
                              return_value=True):
        apply_amp(cfg, 'bf16')
        ow_cfg = dict(cfg.optim_wrapper.finetune)
        ow = AmpOptimWrapper(
            optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))],
                                      lr=0.1),
            dtype=ow_cfg['dtype'],
            loss_scale=ow_cfg['loss_scale'])
    assert ow.cast_dtype == torch.bfloat16
    assert not ow.loss_scaler.is_enabled()
    loss = torch.tensor(2.0)
    assert ow.loss_scaler.scale(loss) is loss
