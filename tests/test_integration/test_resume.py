# Copyright (c) mmvireid contributors. All rights reserved.
"""Interrupt a toy run inside each stage and resume it: the continued run
must equal the uninterrupted one (stage, optimizer, scheduler, losses)."""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner
from toy_utils import RecordLossesHook, toy_config

from mmvireid.utils import register_all_modules

register_all_modules()


def _run(cfg, crash_at_iter=None, resume=False):
    cfg = cfg.copy()
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='RecordLossesHook', crash_at_iter=crash_at_iter)
    ]
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except KeyboardInterrupt:
        pass
    recorder = [h for h in runner.hooks if isinstance(h, RecordLossesHook)][0]
    return runner, recorder.records


@pytest.fixture(scope='module')
def reference_run(toy_sysu_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('resume_reference'))
    cfg = toy_config(toy_sysu_root, work_dir)
    runner, records = _run(cfg)
    return cfg, runner, records


def _iters_per_epoch(records, epoch):
    return sum(1 for r in records if r[0] == epoch)


@pytest.mark.parametrize('crash_epoch,where', [
    (1, 'mid'),    # inside the prompt stage
    (1, 'last'),   # last iteration of the prompt stage
    (2, 'first'),  # first iteration of the finetune stage
    (3, 'mid'),    # inside the finetune stage
])
def test_resume_equals_uninterrupted(reference_run, tmp_path, crash_epoch,
                                     where):
    cfg_ref, runner_ref, records_ref = reference_run
    stages = [r[2] for r in records_ref]
    assert stages[0] == 'prompt' and stages[-1] == 'finetune'
    first_iter = min(r[1] for r in records_ref if r[0] == crash_epoch)
    n = _iters_per_epoch(records_ref, crash_epoch)
    crash_at = first_iter + {'first': 1, 'mid': n // 2, 'last': n}[where]

    cfg = cfg_ref.copy()
    cfg.work_dir = str(tmp_path)
    _, crashed = _run(cfg, crash_at_iter=crash_at)
    assert crashed[-1][1] == crash_at - 1  # it really stopped there
    # the kill happened after the checkpoint of the previous epoch
    assert osp.exists(osp.join(str(tmp_path), f'epoch_{crash_epoch}.pth'))

    runner, resumed = _run(cfg, resume=True)
    # resumed at the start of the interrupted epoch, in the right stage
    assert resumed[0][0] == crash_epoch
    assert resumed[0][2] == records_ref[first_iter][2]
    ref_tail = [r for r in records_ref if r[0] >= crash_epoch]
    assert [r[:3] for r in resumed] == [r[:3] for r in ref_tail]
    for got, want in zip(resumed, ref_tail):
        assert got[3] == pytest.approx(want[3], rel=1e-6, abs=1e-7), got

    # final parameters, optimizer and scheduler states equal
    ref_sd = runner_ref.model.state_dict()
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(v, ref_sd[k], rtol=1e-6, atol=1e-7,
                                   msg=k)
    for stage in ('prompt', 'finetune'):
        opt_ref = runner_ref.optim_wrapper[stage].optimizer.state_dict()
        opt = runner.optim_wrapper[stage].optimizer.state_dict()
        assert [g['lr'] for g in opt['param_groups']] == [
            g['lr'] for g in opt_ref['param_groups']
        ]
        for pid, st in opt['state'].items():
            for key, val in st.items():
                torch.testing.assert_close(
                    val, opt_ref['state'][pid][key], rtol=1e-6, atol=1e-7)
        sched = [s.state_dict() for s in runner.param_schedulers[stage]]
        sched_ref = [
            s.state_dict() for s in runner_ref.param_schedulers[stage]
        ]
        assert [s['last_step'] for s in sched] == [
            s['last_step'] for s in sched_ref
        ]


def test_resume_without_checkpoint_path_fails_clearly(tmp_path):
    from mmvireid.utils.tool_utils import (UserInputError,
                                           check_resume_checkpoint)
    with pytest.raises(UserInputError, match='does not exist'):
        check_resume_checkpoint(str(tmp_path / 'nothing.pth'))
