# Copyright (c) mmvireid contributors. All rights reserved.
from typing import Dict, Union

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.model.utils import detect_anomalous_params
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mmvireid.registry import MODEL_WRAPPERS

__all__ = ['StageDistributedDataParallel', 'current_optim_wrapper']


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
        ow.update_params(parsed_loss)
        if self.detect_anomalous_params:
            detect_anomalous_params(parsed_loss, model=self)
        return log_vars
