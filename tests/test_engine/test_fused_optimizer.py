# Copyright (c) mmvireid contributors. All rights reserved.
"""``fused`` in StageOptimWrapperConstructor: explicit values are kept (and
``True`` is checked), ``'auto'`` (the default) fuses Adam / AdamW / SGD when
a stage's parameters are all on CUDA and leaves CPU stages unfused."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mmvireid.engine.optimizers import StageOptimWrapperConstructor
from mmvireid.engine.optimizers.stage_optim_wrapper_constructor import \
    resolve_fused


class _Model(nn.Module):

    def __init__(self, device='cpu'):
        super().__init__()
        self.prompt_learner = nn.Linear(2, 2, device=device)
        self.head = nn.Linear(3, 4, device=device)


def build(optimizer, model=None, **stage):
    model = model if model is not None else _Model()
    wrappers = StageOptimWrapperConstructor(
        dict(
            prompt=dict(
                modules=['prompt_learner'], optimizer=optimizer,
                **stage)))(model)
    return wrappers['prompt'].optimizer


@pytest.mark.parametrize('opt_type', ['Adam', 'AdamW', 'SGD'])
def test_cpu_defaults(opt_type):
    # auto: left to torch on the CPU (unfused, the reference rounding)
    assert build(dict(type=opt_type, lr=0.1)).defaults['fused'] is None
    assert build(dict(type=opt_type, lr=0.1,
                      fused='auto')).defaults['fused'] is None
    # explicit values are kept
    assert build(dict(type=opt_type, lr=0.1,
                      fused=False)).defaults['fused'] is False
    # torch has fused CPU kernels: an explicit True uses them
    opt = build(dict(type=opt_type, lr=0.1, fused=True))
    assert opt.defaults['fused'] is True
    params = opt.param_groups[0]['params']
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


def test_explicit_fused_errors():
    with pytest.raises(
            ValueError,
            match=r'optim_wrapper\["prompt"\].optimizer: fused=True needs '
            r"floating-point parameters on a device with fused kernels .*"
            r"parameters on \['meta/torch.float32'\]"):
        build(dict(type='Adam', lr=0.1, fused=True), _Model(device='meta'))
    with pytest.raises(ValueError, match='RMSprop has no fused'):
        build(dict(type='RMSprop', lr=0.1, fused=True))
    with pytest.raises(ValueError, match='foreach=True exclude each other'):
        build(dict(type='Adam', lr=0.1, fused=True, foreach=True))
    with pytest.raises(ValueError, match="True, False, None or 'auto'"):
        build(dict(type='Adam', lr=0.1, fused='yes'))


def _fake_cuda_params(n=3):
    """What resolve_fused reads of a parameter, as a CUDA one answers."""
    return [
        SimpleNamespace(
            is_cuda=True,
            device=torch.device('cuda', 0),
            dtype=torch.float32,
            is_floating_point=lambda: True) for _ in range(n)
    ]


def test_auto_policy_on_cuda_parameters():
    cuda = _fake_cuda_params()
    for opt_type in ('Adam', 'AdamW', 'SGD', torch.optim.AdamW):
        cfg = resolve_fused(dict(type=opt_type, lr=0.1), cuda, 'prompt')
        assert cfg == dict(type=opt_type, lr=0.1, fused=True)
    # the config has the last word
    for extra in (dict(fused=False), dict(foreach=True), dict(fused=None)):
        cfg = resolve_fused(dict(type='Adam', **extra), cuda, 'prompt')
        assert 'fused' not in cfg or cfg['fused'] is not True, extra
    # an optimizer without a fused step, a constructor policy of None, a
    # stage with a CPU parameter, or none at all: not fused
    assert 'fused' not in resolve_fused(dict(type='RMSprop'), cuda, 'prompt')
    assert 'fused' not in resolve_fused(
        dict(type='Adam'), cuda, 'prompt', default=None)
    mixed = cuda + [torch.zeros(2)]
    assert 'fused' not in resolve_fused(dict(type='Adam'), mixed, 'prompt')
    assert 'fused' not in resolve_fused(dict(type='Adam'), [], 'prompt')
    # the input config is not modified
    cfg = dict(type='Adam', fused='auto')
    resolve_fused(cfg, cuda, 'prompt')
    assert cfg == dict(type='Adam', fused='auto')


def test_reference_switch_from_config():
    """The benchmark's reference variant sets
    ``optim_wrapper.<stage>.optimizer.fused=False`` (and foreach=True)."""
    opt = build(dict(type='Adam', lr=0.1, fused=False, foreach=True))
    assert opt.defaults['fused'] is False
    assert opt.defaults['foreach'] is True


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')
def test_auto_fuses_on_cuda():
    model = _Model(device='cuda')
    assert build(dict(type='Adam', lr=0.1), model).defaults['fused'] is True
    assert build(dict(type='Adam', lr=0.1, fused=False),
                 model).defaults['fused'] is False
