# Copyright (c) mmvireid contributors. All rights reserved.
"""``--amp``: rewrite a config's optim wrappers for mixed precision."""
import torch
from mmengine.config import ConfigDict
from mmengine.logging import print_log

from .errors import UserInputError

__all__ = [
    'AMP_CHOICES',
    'apply_amp',
    'stage_optim_wrapper_cfgs',
]


def stage_optim_wrapper_cfgs(optim_wrapper) -> list:
    """The optim wrapper config of every stage of ``optim_wrapper``: the
    per-stage entries of a ``StageOptimWrapperConstructor`` config, or the
    config itself (the dicts themselves, to edit in place)."""
    if optim_wrapper.get('constructor') == 'StageOptimWrapperConstructor':
        return [v for k, v in optim_wrapper.items() if k != 'constructor']
    return [optim_wrapper]


#: ``--amp`` choices of the tools
AMP_CHOICES = ('auto', 'bf16', 'fp16')


def apply_amp(cfg, dtype: str = 'auto') -> str:
    """Train (and evaluate) ``cfg`` with automatic mixed precision.

    Every optim wrapper (a single one, or the per-stage wrappers of
    ``StageOptimWrapperConstructor``) becomes an ``AmpOptimWrapper`` with the
    autocast ``dtype``; ``bf16`` has fp32's exponent range and trains without
    loss scaling (no ``GradScaler`` and its per-step host sync), ``fp16``
    scales the loss dynamically. Validation and testing extract features
    under autocast too (mmengine's ``val_cfg.fp16`` / ``test_cfg.fp16``).
    Losses that need fp32 (the SupCon logits of the prompt stages, the
    distance matrices of the triplet losses) cast their inputs themselves.

    Args:
        cfg (Config): The config, changed in place.
        dtype (str): ``'bf16'``, ``'fp16'`` or ``'auto'`` (bf16 where the GPU
            supports it, e.g. A100/H100; fp16 otherwise).

    Returns:
        str: The dtype used, ``'bf16'`` or ``'fp16'``.
    """
    if dtype not in AMP_CHOICES:
        raise UserInputError(f'--amp {dtype!r}: choose one of {AMP_CHOICES}')
    if not torch.cuda.is_available():
        raise UserInputError(
            '--amp needs a CUDA device (mmengine AmpOptimWrapper asserts '
            'CUDA); none is available.')
    if dtype == 'auto':
        dtype = 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    for stage_cfg in stage_optim_wrapper_cfgs(cfg.optim_wrapper):
        if stage_cfg.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current')
            continue
        stage_cfg['type'] = 'AmpOptimWrapper'
        stage_cfg['dtype'] = dict(bf16='bfloat16', fp16='float16')[dtype]
        stage_cfg.setdefault(
            'loss_scale',
            dict(enabled=False) if dtype == 'bf16' else 'dynamic')
    for key in ('val_cfg', 'test_cfg'):
        loop = cfg.get(key)
        if isinstance(loop, (dict, ConfigDict)):
            # mmengine's loops autocast to the device default (fp16), which
            # is exact enough for L2-normalised retrieval features
            loop['fp16'] = True
    return dtype
