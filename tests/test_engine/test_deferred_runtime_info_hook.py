# Copyright (c) mmvireid contributors. All rights reserved.
"""DeferredRuntimeInfoHook leaves exactly what RuntimeInfoHook leaves.

Two identical tiny CPU runs (7 iterations per epoch, LoggerHook interval 3,
validation, checkpoints), one per hook: the message hub histories, the
scalars.json of the LocalVisBackend, the train/val log lines and the message
hub saved in every checkpoint must be equal, while the deferred hook calls
no ``Tensor.item`` and moves values to the host only at flushes.
"""
import glob
import json
import os.path as osp
import re
import uuid

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import RuntimeInfoHook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmvireid.engine.hooks import DeferredRuntimeInfoHook, StageSwitchHook
from mmvireid.utils import register_all_modules

register_all_modules()

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ITERS_PER_EPOCH = 7
LOG_INTERVAL = 3
TIMING = ('time', 'data_time', 'eta')  # wall-clock values differ per run


class _ToyData(Dataset):

    def __init__(self, num, seed):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num, 4, generator=gen)
        self.y = self.x @ torch.tensor([1., -2., .5, 3.]) + 0.1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=self.x[idx], labels=self.y[idx])


class _ToyModel(BaseModel):
    """Returns float32 losses, an int64 tensor and a python float; stage
    'b' adds one more loss (a key new to the message hub)."""

    STAGES = ('a', 'b')

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.current_stage = None
        self.steps = 0

    def switch_stage(self, name):
        self.current_stage = name

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(inputs).squeeze(-1)
        if mode == 'loss':
            losses = dict(
                loss_mse=((out - labels)**2).mean(),
                loss_l1=(out - labels).abs().mean())
            if self.current_stage == 'b':
                losses['loss_b'] = 0.1 * out.pow(2).mean()
            return losses
        if mode == 'predict':
            return list((out - labels).abs())
        return out

    def train_step(self, data, optim_wrapper):
        log_vars = super().train_step(data, optim_wrapper)
        self.steps += 1
        log_vars['n_pos'] = (data['labels'] > 0).sum()  # int64
        log_vars['step_frac'] = self.steps / ITERS_PER_EPOCH  # python float
        return log_vars


class _ToyMetric(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(float(err) for err in data_samples)

    def compute_metrics(self, results):
        return dict(mae=sum(results) / len(results))


def _build_runner(work_dir, hook_type, staged):
    torch.manual_seed(0)
    model = _ToyModel()
    loader = dict(
        sampler=dict(type='DefaultSampler', shuffle=True),
        num_workers=0,
        collate_fn=dict(type='default_collate'))
    if staged:
        # stage 'a' is not validated; StageSwitchHook drops its losses
        train_cfg = dict(
            type='MultiStageTrainLoop',
            stages=[
                dict(name='a', epochs=1, validate=False),
                dict(name='b', epochs=2)
            ],
            val_interval=1)
        checkpoint = dict(type='CheckpointHook', interval=1)
        custom_hooks = [dict(type='StageSwitchHook')]
    else:
        train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
        # saves mid-buffer (after iters 5 and 10): before_save_checkpoint
        checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=5)
        custom_hooks = []
    return Runner(
        model=model,
        work_dir=work_dir,
        experiment_name=f'deferred_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=_ToyData(4 * ITERS_PER_EPOCH, seed=1),
            batch_size=4,
            **loader),
        val_dataloader=dict(
            dataset=_ToyData(6, seed=2), batch_size=3, **loader),
        val_evaluator=[_ToyMetric()],
        val_cfg=dict(),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.02)),
        param_scheduler=[
            dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=.5)
        ],
        default_hooks=dict(
            runtime_info=dict(type=hook_type),
            logger=dict(type='LoggerHook', interval=LOG_INTERVAL),
            checkpoint=checkpoint),
        custom_hooks=custom_hooks,
        visualizer=dict(
            type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        randomness=dict(seed=0),
        default_scope='mmvireid',
        log_level='INFO')


def _instrument(runner, hook, monkeypatch):
    """Count Tensor.item / Tensor.tolist calls inside the hook's
    after_train_iter; returns the per-iteration records."""
    counts = dict(item=0, tolist=0)
    inside = [False]
    records = []
    for name in counts:
        orig = getattr(torch.Tensor, name)

        def counted(self, *args, _orig=orig, _name=name, **kwargs):
            if inside[0]:
                counts[_name] += 1
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    orig_after = hook.after_train_iter

    def after_train_iter(runner, batch_idx, data_batch=None, outputs=None):
        before = dict(counts)
        inside[0] = True
        try:
            orig_after(runner, batch_idx, data_batch, outputs)
        finally:
            inside[0] = False
        records.append(
            dict(
                epoch=runner.epoch,
                batch_idx=batch_idx,
                item=counts['item'] - before['item'],
                tolist=counts['tolist'] - before['tolist'],
                pending=getattr(hook, 'num_pending', 0)))

    hook.after_train_iter = after_train_iter  # Runner.call_hook uses getattr
    return records


def _hub_state(runner_or_state):
    """Message hub scalars: key order, values (timings: counts only)."""
    scalars = runner_or_state.message_hub.log_scalars if hasattr(
        runner_or_state, 'message_hub') else runner_or_state['log_scalars']
    state = []
    for key, buf in scalars.items():
        values, counts = buf.data
        if key.split('/')[-1] in TIMING:
            state.append((key, len(values)))
        else:
            state.append((key, values.tolist(), counts.tolist()))
    return state


def _outputs(work_dir):
    """scalars.json records (timings: keys only) and the train/val log
    lines without eta/time/data_time."""
    (scalars_json, ) = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars_json) as f:
        records = [json.loads(line) for line in f]
    records = [[(k, None if k in TIMING else v) for k, v in rec.items()]
               for rec in records]
    (log_file, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log_file) as f:
        lines = [
            line[line.index('Epoch('):].rstrip() for line in f
            if 'Epoch(' in line
        ]
    lines = [
        re.sub(r'(eta|time|data_time): \S+(\s+|$)', '', ln) for ln in lines
    ]
    return records, lines


def _checkpoint_hubs(work_dir):
    hubs = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*.pth'))):
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
        hubs[osp.basename(path)] = _hub_state(ckpt['message_hub'])
    return hubs


def _run(tmp_path, hook_type, staged, monkeypatch):
    work_dir = str(tmp_path / hook_type)
    runner = _build_runner(work_dir, hook_type, staged)
    hooks = [h for h in runner.hooks if isinstance(h, RuntimeInfoHook)]
    # default_hooks.runtime_info replaces mmengine's RuntimeInfoHook
    assert [type(h).__name__ for h in hooks] == [hook_type]
    with monkeypatch.context() as patch:
        records = _instrument(runner, hooks[0], patch)
        runner.train()
    return dict(
        hub=_hub_state(runner),
        outputs=_outputs(work_dir),
        ckpts=_checkpoint_hubs(work_dir),
        records=records,
        hook=hooks[0])


@pytest.mark.parametrize('staged', [False, True], ids=['epochs', 'stages'])
def test_same_logs_hub_and_checkpoints_without_syncs(tmp_path, monkeypatch,
                                                     staged):
    ref = _run(tmp_path, 'RuntimeInfoHook', staged, monkeypatch)
    new = _run(tmp_path, 'DeferredRuntimeInfoHook', staged, monkeypatch)

    assert new['hub'] == ref['hub']
    ref_records, ref_lines = ref['outputs']
    new_records, new_lines = new['outputs']
    assert new_records == ref_records
    assert new_lines == ref_lines
    assert new['ckpts'] == ref['ckpts']

    num_epochs = 3 if staged else 2
    hub = dict((s[0], s[1:]) for s in ref['hub'])
    # non-trivial: lines logged at 3 and 6 per epoch (7 is ignore_last),
    # validation, int values
    assert sum('Epoch(train)' in ln for ln in ref_lines) == 2 * num_epochs
    assert any('Epoch(val)' in ln for ln in ref_lines)
    assert all(float(v).is_integer() for v in hub['train/n_pos'][0])
    assert len(new["ckpts"]) == 3  # iter_5/10/14 or epoch_1/2/3
    if staged:
        # StageSwitchHook dropped stage a's losses: stage b's only, in both
        assert len(hub['train/loss'][0]) == 2 * ITERS_PER_EPOCH
        assert len(hub['train/loss_b'][0]) == 2 * ITERS_PER_EPOCH
        assert len(hub['train/lr'][0]) == 3 * ITERS_PER_EPOCH
    else:
        assert len(hub['train/loss'][0]) == 2 * ITERS_PER_EPOCH

    # the reference syncs once per tensor output per iteration (counting
    # works); the deferred hook never calls item() and calls tolist() once
    # per dtype (float32 losses, int64 n_pos) at flushes only
    num_tensors = 5 if staged else 4  # loss, loss_mse, loss_l1, [b], n_pos
    ref_items = [(r['item'], r['tolist']) for r in ref['records']]
    assert ref_items[-1] == (num_tensors, 0)
    assert len(ref_items) == num_epochs * ITERS_PER_EPOCH
    flushed = set()
    for rec in new['records']:
        assert rec['item'] == 0
        assert rec['tolist'] in (0, 2)
        if rec['tolist']:
            assert rec['pending'] == 0
            flushed.add((rec['epoch'], rec['batch_idx']))
        else:
            assert rec['pending'] > 0
    # new keys (first iteration, first of stage b), every 3rd, epoch end
    expected = {(e, b) for e in range(num_epochs) for b in (2, 5, 6)}
    expected |= {(0, 0), (1, 0)} if staged else {(0, 0)}
    assert flushed == expected
    assert new['hook'].num_pending == 0
    assert new['hook'].flush_intervals == (LOG_INTERVAL, )


class _FakeRunner:

    def __init__(self):
        self.message_hub = MessageHub(f'deferred_unit_{uuid.uuid4().hex}')


def test_flush_keeps_order_values_and_types():
    """Mixed outputs, values mutated in place after the iteration, and
    bfloat16/int tensors: the hub gets what update_scalar would get."""
    hook = DeferredRuntimeInfoHook()
    runner, ref_hub = _FakeRunner(), MessageHub(f'ref_{uuid.uuid4().hex}')
    acc = torch.zeros(3)
    for it in range(4):
        acc += it + 0.25  # a buffer the model keeps updating
        outputs = dict(
            loss=torch.tensor(1.5 + it, requires_grad=True) * 2,
            acc=acc[1],  # a view of a tensor that changes later
            half=torch.tensor([0.1 * it], dtype=torch.bfloat16),
            count=torch.tensor(it * 3),
            py=it / 3,
            np=np.float32(it) / 7)
        for key, value in outputs.items():
            ref_hub.update_scalar(f'train/{key}', value)
        hook._buffer_outputs(runner, outputs)
    assert hook.num_pending == 24
    assert hook.flush(runner) == 24
    assert hook.num_pending == 0 and hook.flush(runner) == 0
    got, want = runner.message_hub.log_scalars, ref_hub.log_scalars
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_array_equal(got[key].data[0], want[key].data[0])
        np.testing.assert_array_equal(got[key].data[1], want[key].data[1])


def test_new_key_is_reported_and_bad_outputs_are_refused():
    hook = DeferredRuntimeInfoHook()
    runner = _FakeRunner()
    assert hook._buffer_outputs(runner, dict(loss=torch.tensor(1.)))
    hook.flush(runner)
    assert not hook._buffer_outputs(runner, dict(loss=torch.tensor(2.)))
    assert hook._buffer_outputs(runner, dict(loss=1., other=2.))
    with pytest.raises(
            ValueError, match='"feat" must be a scalar.*\\(2, 3\\)'):
        hook._buffer_outputs(runner, dict(feat=torch.zeros(2, 3)))
    with pytest.raises(TypeError, match='"name".*str'):
        hook._buffer_outputs(runner, dict(ok=torch.tensor(3.), name='x'))
    # a refused iteration buffers nothing: the pending values still flush
    assert hook.num_pending == 3 and hook.flush(runner) == 3
    assert runner.message_hub.get_scalar('train/loss').data[0].tolist() == [
        1., 2., 1.
    ]
    with pytest.raises(ValueError, match='interval must be a positive int'):
        DeferredRuntimeInfoHook(interval=0)


def test_flush_intervals_from_logger_hooks_and_argument():
    from types import SimpleNamespace

    from mmengine.hooks import LoggerHook

    from mmvireid.engine.hooks.runtime_info_hook import FALLBACK_INTERVAL
    runner = SimpleNamespace(
        message_hub=MessageHub(f'deferred_unit_{uuid.uuid4().hex}'),
        epoch=0,
        iter=0,
        max_epochs=1,
        max_iters=7,
        train_dataloader=SimpleNamespace(dataset=None),
        hooks=[LoggerHook(interval=3)])
    hook = DeferredRuntimeInfoHook(interval=2)
    hook.before_train(runner)
    assert hook.flush_intervals == (2, 3)
    assert runner.message_hub.get_info('loop_stage') == 'train'  # super()
    runner.hooks = []  # no LoggerHook: the fallback bounds the buffer
    hook = DeferredRuntimeInfoHook()
    hook.before_train(runner)
    assert hook.flush_intervals == (FALLBACK_INTERVAL, )


@pytest.mark.parametrize(
    'config', ['_base_/default_runtime.py', '_base_/tensorboard_runtime.py'])
def test_runtimes_use_the_deferred_hook(config):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    assert cfg.default_hooks.runtime_info == dict(
        type='DeferredRuntimeInfoHook')
    assert StageSwitchHook.priority == 'ABOVE_NORMAL'  # after our VERY_HIGH
