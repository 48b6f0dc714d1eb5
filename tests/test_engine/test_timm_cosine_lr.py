# Copyright (c) mmvireid contributors. All rights reserved.
import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from mmvireid.engine.schedulers import TimmCosineLR, timm_cosine_value


def _timm_reference(t, base=3.5e-4, t_initial=60, lr_min=1e-6, warmup_t=5,
                    warmup_lr_init=1e-5):
    """timm CosineLRScheduler(t_mul=1, decay_rate=0.1, cycle_limit=1,
    warmup_prefix=False), written out as in timm."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    i = t // t_initial
    t_curr = t - t_initial * i
    if i < 1:  # cycle_limit = 1
        lr_max = base * (0.1**i)
        return lr_min + 0.5 * (lr_max - lr_min) * (
            1 + math.cos(math.pi * t_curr / t_initial))
    return lr_min


def test_hand_values():
    # warm-up: t=1 -> 1e-5 + (3.5e-4 - 1e-5) / 5 = 7.8e-5
    assert timm_cosine_value(3.5e-4, 1, 60, 1e-6, 5, 1e-5) == pytest.approx(
        7.8e-5)
    # t=30 of 60: cosine midpoint (lr_min + base) / 2
    assert timm_cosine_value(3.5e-4, 30, 60, 1e-6, 5,
                             1e-5) == pytest.approx((3.5e-4 + 1e-6) / 2)
    assert timm_cosine_value(3.5e-4, 60, 60, 1e-6, 5, 1e-5) == 1e-6


@pytest.mark.parametrize('t_offset', [0, 1])
def test_epochs_follow_timm_stepping(t_offset):
    """The lr used in (0-based) epoch k equals timm's lr at t = k + offset:
    CLIP-ReID calls step(epoch) with 1-based epochs, CSDN with 0-based."""
    param = torch.nn.Parameter(torch.zeros(1))
    optim = OptimWrapper(torch.optim.Adam([param], lr=3.5e-4))
    sched = TimmCosineLR(
        optim, t_initial=60, lr_min=1e-6, warmup_t=5, warmup_lr_init=1e-5,
        t_offset=t_offset, begin=0, end=60)
    for epoch in range(60):
        lr = optim.param_groups[0]['lr']
        assert lr == pytest.approx(_timm_reference(epoch + t_offset),
                                   rel=1e-12), epoch
        optim.step()
        sched.step()


def test_offset_begin_inside_a_later_stage():
    param = torch.nn.Parameter(torch.zeros(1))
    optim = OptimWrapper(torch.optim.Adam([param], lr=1.0))
    sched = TimmCosineLR(
        optim, t_initial=4, lr_min=0.0, warmup_t=0, warmup_lr_init=0.0,
        t_offset=0, begin=3, end=7)
    lrs = []
    for _ in range(7):
        lrs.append(optim.param_groups[0]['lr'])
        optim.step()
        sched.step()
    # untouched before the stage starts, then cos schedule from t=0
    assert lrs[:3] == [1.0, 1.0, 1.0]
    assert lrs[3:] == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])
