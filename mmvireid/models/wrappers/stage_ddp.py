# Copyright (c) mmvireid contributors. All rights reserved.
from typing import Dict, Union

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.model.utils import detect_anomalous_params
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mmvireid.registry import MODEL_WRAPPERS

__all__ = [
    'StageDistributedDataParallel', 'current_optim_wrapper',
    'update_params_or_skip'
]


def current_optim_wrapper(model, optim_wrapper: Union[OptimWrapper,
                                                      OptimWrapperDict]):
    """Pick the optim wrapper of the model's current stage.

    Args:
        model: The unwrapped model; must have ``current_stage`` when
            ``optim_wrapper`` is an :class:`OptimWrapperDict`.
        optim_wrapper: One wrapper, or one per stage.
    """
    if not isinstance(optim_wrapper, OptimWrapperDict):
        return optim_wrapper
    stage = getattr(model, 'current_stage', None)
    if stage is None:
        raise RuntimeError(
            'The optim wrapper has one entry per stage '
            f'({list(optim_wrapper.keys())}) but the model has no current '
            'stage. Add StageSwitchHook to custom_hooks.')
    if stage not in optim_wrapper:
        raise KeyError(f'No optim wrapper for stage "{stage}"; '
                       f'optim_wrapper has {list(optim_wrapper.keys())}')
    return optim_wrapper[stage]


def update_params_or_skip(module, optim_wrapper: OptimWrapper,
                          loss: torch.Tensor, log_vars: dict) -> None:
    """``optim_wrapper.update_params(loss)``, or, when the model's
    ``skip_nonfinite_steps`` is set (``DeferredRuntimeInfoHook(
    nonfinite_loss='skip')``), skip the update of a non-finite loss.

    Skipping reads the loss on the host (one device sync per step, only in
    that mode). The backward still runs, so that DDP's gradient all-reduce
    happens on every rank; the gradients are then dropped. Under DDP the
    ranks agree on skipping (a NaN on one rank reaches every rank's
    gradients through the all-reduce). ``log_vars['nonfinite_skipped']`` is
    1.0 for a skipped step, 0.0 otherwise.
    """
    if not getattr(module, 'skip_nonfinite_steps', False):
        optim_wrapper.update_params(loss)
        return
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if dist.is_available() and dist.is_initialized() and \
            dist.get_world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if bool(finite.item()):
        optim_wrapper.update_params(loss)
        log_vars['nonfinite_skipped'] = 0.0
        return
    optim_wrapper.backward(loss)
    optim_wrapper.zero_grad()
    module.nonfinite_skipped_steps = getattr(
        module, 'nonfinite_skipped_steps', 0) + 1
    log_vars['nonfinite_skipped'] = 1.0
    print_log(
        f'Skipped an update with a non-finite loss ({float(loss.detach())}) '
        f'in stage '
        f'"{getattr(module, "current_stage", None)}" '
        f'({module.nonfinite_skipped_steps} skipped so far).',
        logger='current',
        level=30)


@MODEL_WRAPPERS.register_module()
class StageDistributedDataParallel(MMDistributedDataParallel):
    """DDP for staged models: one optimizer per stage.

    mmengine's ``MMDistributedDataParallel.train_step`` calls
    ``optim_wrapper.optim_context`` on the whole :class:`OptimWrapperDict`,
    which raises. This wrapper runs the step with the current stage's
    wrapper, keeping DDP's gradient sync (the forward goes through DDP).
    Use it with ``find_unused_parameters=True``: each stage leaves the other
    stages' parameters unused.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper) -> Dict[str, torch.Tensor]:
        ow = current_optim_wrapper(self.module, optim_wrapper)
        with ow.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self._run_forward(data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        update_params_or_skip(self.module, ow, parsed_loss, log_vars)
        if self.detect_anomalous_params:
            detect_anomalous_params(parsed_loss, model=self)
        return log_vars
