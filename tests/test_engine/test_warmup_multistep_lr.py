# Copyright (c) mmvireid contributors. All rights reserved.
"""WarmupMultiStepLR gives the references' learning rates, bit for bit."""
import pytest
import torch

from mmvireid.engine.schedulers import WarmupMultiStepLR


def _lrs(epochs, base=3.5e-4, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.Adam([param], lr=base)
    sched = WarmupMultiStepLR(optim, **kwargs)
    out = []
    for _ in range(epochs):
        out.append(optim.param_groups[0]['lr'])
        sched.step()
    return out


def test_clip_reid_timing():
    # CLIP-ReID: built (t = 0) and stepped before every epoch, so epoch 1
    # runs at t = 1: 0.01 * 0.9 + 0.1 = 0.109 of the base rate
    lrs = _lrs(120, milestones=[40, 70], warmup_factor=0.01,
               warmup_iters=10, t_offset=1)
    assert lrs[0] == 3.5e-4 * (0.01 * (1 - 0.1) + 0.1) * 1
    assert lrs[0] == pytest.approx(3.815e-5, rel=1e-12)
    assert lrs[8] < lrs[9] == 3.5e-4  # warm-up over in epoch 10
    assert lrs[38] == 3.5e-4 and lrs[39] == 3.5e-4 * 1 * 0.1  # epoch 40
    assert lrs[68] == lrs[39] and lrs[69] == 3.5e-4 * 1 * 0.1**2
    assert lrs[-1] == lrs[69]


def test_csdn_timing():
    # CSDN: step(epoch) with 0-based epochs
    lrs = _lrs(80, base=3e-4, milestones=[40, 70], warmup_factor=0.01,
               warmup_iters=10, t_offset=0)
    assert lrs[0] == 3e-4 * 0.01
    assert lrs[5] == 3e-4 * (0.01 * (1 - 0.5) + 0.5)
    assert lrs[39] == 3e-4 and lrs[40] == 3e-4 * 0.1
    assert lrs[70] == 3e-4 * 0.1**2


def test_bad_arguments():
    param = torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.Adam([param], lr=1e-3)
    with pytest.raises(ValueError, match='milestones must be increasing'):
        WarmupMultiStepLR(optim, milestones=[70, 40])
    with pytest.raises(ValueError, match='warmup_iters must be >= 0'):
        WarmupMultiStepLR(optim, milestones=[40], warmup_iters=-1)
