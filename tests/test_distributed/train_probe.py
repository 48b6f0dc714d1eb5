# Copyright (c) mmvireid contributors. All rights reserved.
"""Test-only modules imported by training subprocesses (``custom_imports``).

The distributed and kill/resume tests run ``tools/train.py`` (or torchrun
through ``tools/dist_train.sh``) in subprocesses, as users do, and learn what
happened inside through :class:`TrainProbeHook`, which writes, per rank:

* ``losses_rank<r>.jsonl``: one line per training iteration
  (``epoch``, ``iter``, ``stage`` and every logged loss);
* ``state_rank<r>_<tag>.pt``: the model's ``state_dict`` (parameters and
  buffers) at the start (``init``) and after the last epoch of every stage
  (the stage name);
* ``cache_rank<r>_<stage>.pt``: the feature cache a stage iterates
  (``feats``, ``labels``, ``modalities``), when it has one;
* ``metrics_rank<r>.jsonl``: the metrics of every validation.

It is controlled by environment variables, so one config serves every run:

* ``PROBE_DIR`` (required): where the files go;
* ``PROBE_PAUSE_AT_ITER=N``: after global iteration ``N`` (1-based; its
  optimiser step done, its losses written) write ``paused`` and sleep until
  the test kills the process with SIGKILL;
* ``PROBE_PAUSE_IN_SAVE=name``: the same, in the middle of saving the
  checkpoint ``name`` (its data fully written to the temporary file, the
  rename into place not yet done).

Also here, for the exact DDP-versus-single-process comparison:

* :class:`PerSampleCosineLoss`, a prompt loss that is a mean over samples
  (SupCon is not: its denominator spans the batch);
* :class:`GlooSyncBNHook`, which makes the model's BatchNorm layers use the
  statistics of the global batch under DDP on CPU, as ``sync_bn='torch'``
  does on GPUs (``torch.nn.SyncBatchNorm`` refuses CPU tensors).
"""
import json
import os
import os.path as osp
import time
import types

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmvireid.registry import HOOKS, MODELS


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _pause(marker: str) -> None:
    """Tell the test where we stopped, then wait for its SIGKILL."""
    with open(marker, 'w') as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(0.05)


@HOOKS.register_module(force=True)
class TrainProbeHook(Hook):
    """Write losses, states and metrics per rank; pause where asked."""

    # after CheckpointHook (VERY_LOW) and SyncBuffersHook: the states dumped
    # after an epoch are the ones saved and synced
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.out_dir = os.environ['PROBE_DIR']
        pause = os.environ.get('PROBE_PAUSE_AT_ITER')
        self.pause_at_iter = int(pause) if pause else None
        self.pause_in_save = os.environ.get('PROBE_PAUSE_IN_SAVE') or None
        os.makedirs(self.out_dir, exist_ok=True)

    def _path(self, name: str) -> str:
        return osp.join(self.out_dir, name)

    def _append(self, name: str, record: dict) -> None:
        # one write per line, flushed: a SIGKILL loses nothing written
        with open(self._path(f'{name}_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')
            f.flush()

    def _dump_state(self, runner, tag: str) -> None:
        state = {
            k: v.detach().clone()
            for k, v in _unwrap(runner.model).state_dict().items()
        }
        torch.save(state, self._path(f'state_rank{get_rank()}_{tag}.pt'))

    def before_train(self, runner) -> None:
        if self.pause_in_save:
            self._pause_in_save()
        if runner.iter == 0:
            self._dump_state(runner, 'init')

    def before_train_epoch(self, runner) -> None:
        # after StageSwitchHook (ABOVE_NORMAL) has set the stage's loader
        from mmvireid.datasets.feature_cache import FeatureCacheDataset
        stage = runner.train_loop.stage_at(runner.epoch)
        dataset = runner.train_loop.dataloader.dataset
        path = self._path(f'cache_rank{get_rank()}_{stage.name}.pt')
        if isinstance(dataset, FeatureCacheDataset) and not osp.exists(path):
            torch.save(
                dict(
                    feats=dataset.feats,
                    labels=dataset.labels,
                    modalities=dataset.modalities), path)

    def _pause_in_save(self) -> None:
        # atomic_write renames the finished temporary file with os.replace
        target, marker = self.pause_in_save, self._path('paused')
        replace = os.replace

        def replace_then_pause(src, dst, *args, **kwargs):
            if osp.basename(str(dst)) == target:
                _pause(marker)
            return replace(src, dst, *args, **kwargs)

        os.replace = replace_then_pause

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        record = dict(
            epoch=runner.epoch,
            iter=runner.iter,
            stage=_unwrap(runner.model).current_stage,
            losses={
                k: float(torch.as_tensor(v).detach())
                for k, v in (outputs or {}).items()
            })
        self._append('losses', record)
        if self.pause_at_iter is not None and \
                runner.iter + 1 == self.pause_at_iter:
            _pause(self._path('paused'))

    def after_train_epoch(self, runner) -> None:
        stage = runner.train_loop.stage_at(runner.epoch)
        if runner.epoch + 1 == stage.end:
            self._dump_state(runner, stage.name)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._append(
            'metrics',
            dict(
                epoch=runner.epoch,
                metrics={
                    k: float(v)
                    for k, v in (metrics or {}).items()
                }))


@MODELS.register_module(force=True)
class PerSampleCosineLoss(torch.nn.Module):
    """``mean_i (1 - cos(a_i, b_i))``: a prompt loss whose value over a
    batch is the mean of per-sample terms, so the mean of two half-batch
    losses equals the full-batch loss. Same call as SupConLoss."""

    def forward(self, feats_a, feats_b, labels_a=None, labels_b=None):
        return (1 - F.cosine_similarity(feats_a, feats_b, dim=1)).mean()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum of the
    gradients of all ranks' outputs (each rank's loss uses the sum)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _global_batch_norm(self, x):
    """BatchNorm over the batches of all ranks (train mode), differentiable
    through the all-reduces, with running statistics updated from the
    global batch: the semantics of ``torch.nn.SyncBatchNorm``. ``x`` is
    ``[N, C]`` or ``[N, C, *spatial]``."""
    if not self.training:
        return self._probe_plain_forward(x)
    group = self._probe_group
    dims = [0] + list(range(2, x.dim()))  # all but the channels
    shape = [1, -1] + [1] * (x.dim() - 2)
    count = torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype)
    total = _AllReduceSum.apply(torch.cat([x.sum(dims), count]), group)
    n = total[-1]
    mean = total[:-1] / n
    var = _AllReduceSum.apply(
        ((x - mean.view(shape))**2).sum(dims), group) / n
    if self.track_running_stats:
        with torch.no_grad():
            momentum = self.momentum
            self.running_mean.mul_(1 - momentum).add_(momentum * mean)
            self.running_var.mul_(1 - momentum).add_(momentum * var * n /
                                                     (n - 1))
            self.num_batches_tracked.add_(1)
    out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
    if self.affine:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    return out


@HOOKS.register_module(force=True)
class GlooSyncBNHook(Hook):
    """Give every BatchNorm layer of the model global-batch statistics under
    DDP (a no-op in a single process)."""

    def before_train(self, runner) -> None:
        if get_world_size() == 1:
            return
        # a group of its own: these all-reduces then never interleave with
        # DDP's gradient buckets on the default group
        group = dist.new_group(backend='gloo')
        for module in _unwrap(runner.model).modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module._probe_group = group
                module._probe_plain_forward = module.forward
                module.forward = types.MethodType(_global_batch_norm, module)
