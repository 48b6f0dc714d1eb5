# Copyright (c) mmvireid contributors. All rights reserved.
"""RuntimeInfoHook without a device-to-host sync per loss per iteration.

Why: mmengine's :class:`~mmengine.hooks.RuntimeInfoHook` pushes every model
output into the message hub after every iteration, and the message hub turns
each tensor into a python number with ``.item()``. On a GPU every ``.item()``
waits for the whole queued step to finish, so a model that logs ``k`` losses
stalls the host ``k`` times per step although the values are only read every
``LoggerHook.interval`` iterations.
"""
import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.hooks import LoggerHook, RuntimeInfoHook
from mmengine.model import is_model_wrapper
from mmengine.utils import apply_to

from mmvireid.registry import HOOKS

__all__ = ['DeferredRuntimeInfoHook', 'NonFiniteLossError']

#: What to do about a non-finite loss.
NONFINITE_POLICIES = ('stop', 'skip')


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss (``nonfinite_loss='stop'``).
    """


#: Flush interval (iterations) when the runner has no LoggerHook and no
#: ``interval`` is given; it only bounds the size of the buffer.
FALLBACK_INTERVAL = 50

_Group = Tuple[torch.device, torch.dtype]


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """:class:`~mmengine.hooks.RuntimeInfoHook` that defers the train outputs.

    The hook does everything ``RuntimeInfoHook`` does (loop stage, epoch,
    iteration and learning rates, which are python floats, validation and
    test metrics), except that the model outputs of
    ``after_train_iter`` are not pushed into the message hub at once: their
    detached tensor values are kept on their device (one ``torch.stack`` per
    iteration, a copy, so no autograd graph or larger storage is kept alive)
    and pushed, in iteration order, when something is about to read them:

    * every ``LoggerHook.interval`` iterations and at the last iteration of
      an epoch (``LoggerHook`` logs when ``(batch_idx + 1) % interval == 0``
      or at the end of an epoch; this hook runs before it, VERY_HIGH vs
      BELOW_NORMAL);
    * at an iteration whose outputs include a key the message hub does not
      hold yet (the first iteration, the first one after
      :class:`StageSwitchHook` dropped a stage's losses), so new keys are
      created in the message hub in the same order as with
      ``RuntimeInfoHook`` and the log lines list them in the same order;
    * before and after every train epoch (before ``LoggerHook`` and
      ``CheckpointHook`` run their ``after_train_epoch`` and before
      ``StageSwitchHook`` forgets a stage's losses), before validation,
      after training, and before any checkpoint is saved (the message hub
      state in the checkpoint is then taken again).

    A flush moves all buffered tensor values of one device and dtype to the
    host at once (``torch.cat(...).tolist()``: typically one transfer per
    ``LoggerHook.interval`` iterations instead of one ``.item()`` per loss
    per iteration). The message hub histories, and so the log lines, the
    visualizer scalars and the checkpoints, are exactly those of
    ``RuntimeInfoHook``: every value arrives in the same order with the same
    python type (``tolist`` returns what ``item`` does), python numbers pass
    through unchanged.

    Note:
        A hook that reads ``train/*`` scalars of the message hub at other
        iterations must run with ``interval`` set to its period (or call
        :meth:`flush`). If training raises, the values of the iterations
        since the last flush are not pushed (the message hub is not read
        after a crash, and a checkpoint saved by an exception handler
        flushes first).

    **Non-finite losses.** Every flush checks the loss values (outputs named
    ``loss*``) it moves to the host. With ``nonfinite_loss='stop'`` (the
    default) the first NaN or infinite one raises
    :class:`NonFiniteLossError`, naming the loss term, the iteration, the
    epoch and the stage. A flush runs before every checkpoint is saved and
    before every validation, so a diverged run writes no checkpoint and no
    metric after the bad step; it stops at most one logging interval after
    it, since checking every step would cost a device sync per step. With
    ``'skip'``, the model checks its loss at every step (one host sync per
    step), skips the update of a non-finite one and logs
    ``nonfinite_skipped`` (1 for a skipped step, so its logged mean is the
    share of skipped steps).

    Args:
        interval (int, optional): Flush also every ``interval`` iterations
            (counted like ``LoggerHook``: ``(batch_idx + 1) % interval``).
            The intervals of the runner's ``LoggerHook`` instances are always
            used; without any, ``interval`` defaults to 50, which only bounds
            the buffer. Defaults to None.
        nonfinite_loss (str): ``'stop'`` or ``'skip'`` (see above).
            Defaults to ``'stop'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 interval: Optional[int] = None,
                 nonfinite_loss: str = 'stop') -> None:
        if nonfinite_loss not in NONFINITE_POLICIES:
            raise ValueError(
                'DeferredRuntimeInfoHook: nonfinite_loss must be one of '
                f'{NONFINITE_POLICIES}, got {nonfinite_loss!r}')
        self.nonfinite_loss = nonfinite_loss
        if interval is not None and (not isinstance(interval, int)
                                     or isinstance(interval, bool)
                                     or interval < 1):
            raise ValueError('DeferredRuntimeInfoHook: interval must be a '
                             f'positive int or None, got {interval!r}')
        self.interval = interval
        self.flush_intervals: Tuple[int, ...] = ()
        self.last_loop_stage = None
        self._reset_buffer()

    # ------------------------------------------------------------ buffer
    def _reset_buffer(self) -> None:
        # one entry per pushed value, in push order: (message hub key,
        # (device, dtype) group of a tensor or None, offset in the group's
        # values or the python value itself)
        self._entries: List[Tuple[str, Optional[_Group], Any]] = []
        # where each entry came from: (iteration, epoch, stage)
        self._origins: List[Tuple[int, int, Optional[str]]] = []
        # per group: one stacked 1-D tensor per buffered iteration
        self._parts: Dict[_Group, List[torch.Tensor]] = {}
        self._sizes: Dict[_Group, int] = {}

    @property
    def num_pending(self) -> int:
        """Number of buffered values not yet in the message hub."""
        return len(self._entries)

    def _buffer_outputs(self, runner, outputs: dict) -> bool:
        """Buffer one iteration's outputs; return whether one of their keys
        is new to the message hub. Nothing is buffered if one is refused."""
        hub_scalars = runner.message_hub.log_scalars
        new_key = False
        entries: List[Tuple[str, Optional[_Group], Any]] = []
        stacks: Dict[_Group, List[torch.Tensor]] = {}
        for key, value in outputs.items():
            name = f'train/{key}'
            new_key = new_key or name not in hub_scalars
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(
                        f'DeferredRuntimeInfoHook: model output "{key}" must '
                        'be a scalar to be logged, got a tensor of shape '
                        f'{tuple(value.shape)}')
                group = (value.device, value.dtype)
                values = stacks.setdefault(group, [])
                entries.append(
                    (name, group, self._sizes.get(group, 0) + len(values)))
                values.append(value.detach().reshape(()))
            else:
                if isinstance(value, (np.ndarray, np.number)):
                    if value.size != 1:
                        raise ValueError(
                            f'DeferredRuntimeInfoHook: model output "{key}" '
                            'must be a scalar to be logged, got an array of '
                            f'shape {value.shape}')
                    value = value.item()  # host memory: no sync
                elif not isinstance(value, (int, float)):
                    raise TypeError(
                        f'DeferredRuntimeInfoHook: model output "{key}" must '
                        'be a scalar tensor, numpy scalar or python number, '
                        f'got {type(value).__name__}')
                entries.append((name, None, value))
        self._entries.extend(entries)
        origin = (getattr(runner, 'iter', -1), getattr(runner, 'epoch', -1),
                  _stage_of(runner))
        self._origins.extend([origin] * len(entries))
        for group, values in stacks.items():
            self._parts.setdefault(group, []).append(torch.stack(values))
            self._sizes[group] = self._sizes.get(group, 0) + len(values)
        return new_key

    def flush(self, runner) -> int:
        """Push the buffered outputs into the message hub, in order.

        Returns:
            int: The number of values pushed.
        """
        if not self._entries:
            return 0
        entries, parts = self._entries, self._parts
        origins = self._origins
        self._reset_buffer()
        # one device-to-host transfer per (device, dtype)
        host = {
            group: torch.cat(stacked).tolist()
            for group, stacked in parts.items()
        }
        if self.nonfinite_loss == 'stop':
            self._check_finite(entries, origins, host)
        hub = runner.message_hub
        for name, group, item in entries:
            hub.update_scalar(name,
                              item if group is None else host[group][item])
        return len(entries)

    @staticmethod
    def _check_finite(entries, origins, host) -> None:
        """Raise on the first non-finite loss value, before it is logged."""
        for (name, group, item), (it, epoch, stage) in zip(entries, origins):
            value = item if group is None else host[group][item]
            key = name[len('train/'):]
            if key.startswith('loss') and isinstance(
                    value, (int, float)) and not math.isfinite(value):
                raise NonFiniteLossError(
                    f'{key} = {value} at iteration {it + 1} (epoch '
                    f'{epoch + 1}) of stage "{stage}": training stopped, and '
                    'no checkpoint or metric was written after that step. '
                    'Usual causes: a learning rate too high for this batch '
                    'size, fp16 overflow (try --amp bf16) or a broken input. '
                    'To skip such steps instead, set '
                    'default_hooks.runtime_info.nonfinite_loss="skip".')

    def _flush_due(self, runner, batch_idx: int) -> bool:
        """Whether a LoggerHook (or ``interval``) reads the scalars now."""
        if any(
                self.every_n_inner_iters(batch_idx, n)
                for n in self.flush_intervals):
            return True
        try:
            return self.end_of_epoch(runner.train_dataloader, batch_idx)
        except TypeError:  # a dataloader without len(): no epoch end
            return False

    # ------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        self.flush(runner)  # left over from an interrupted train() call
        intervals = {
            hook.interval
            for hook in runner.hooks if isinstance(hook, LoggerHook)
        }
        if self.interval is not None:
            intervals.add(self.interval)
        self.flush_intervals = tuple(sorted(intervals or {FALLBACK_INTERVAL}))
        model = getattr(runner, 'model', None)
        model = model.module if is_model_wrapper(model) else model
        if model is not None:
            # read by the models' train_step (mmvireid.models.wrappers.
            # update_params_or_skip)
            model.skip_nonfinite_steps = self.nonfinite_loss == 'skip'
        super().before_train(runner)

    def before_train_epoch(self, runner) -> None:
        self.flush(runner)
        super().before_train_epoch(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Buffer ``outputs`` and flush when a reader is due (see above)."""
        new_key = outputs is not None and self._buffer_outputs(runner, outputs)
        if new_key or self._flush_due(runner, batch_idx):
            self.flush(runner)

    def after_train_epoch(self, runner) -> None:
        # VERY_HIGH: before LoggerHook / CheckpointHook read the message hub
        self.flush(runner)
        super().after_train_epoch(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)

    def before_val(self, runner) -> None:
        self.flush(runner)
        super().before_val(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Runner.save_checkpoint took the message hub state before calling
        # this hook: take it again (as the Runner does) if values arrived.
        if self.flush(runner) and 'message_hub' in checkpoint:
            checkpoint['message_hub'] = apply_to(
                runner.message_hub.state_dict(), lambda x: hasattr(x, 'cpu'),
                lambda x: x.cpu())


def _stage_of(runner) -> Optional[str]:
    model = getattr(runner, 'model', None)
    model = model.module if is_model_wrapper(model) else model
    return getattr(model, 'current_stage', None)
