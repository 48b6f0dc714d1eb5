# Copyright (c) mmvireid contributors. All rights reserved.
"""Launch settings the tools adjust (CPU process groups, loader workers)."""
import datetime
import logging

import torch
import torch.distributed as dist
from mmengine.config import ConfigDict
from mmengine.logging import print_log

from .errors import UserInputError

__all__ = [
    'setup_cpu_distributed',
    'disable_persistent_workers',
]


def setup_cpu_distributed(cfg) -> bool:
    """Let ``--launcher pytorch`` run on machines without CUDA (gloo).

    MMEngine 0.10.7's launcher calls ``torch.cuda.set_device(LOCAL_RANK)``
    and its Runner gives DDP ``device_ids=[LOCAL_RANK]``; both fail without
    a GPU. Here, when CUDA is unavailable, the default process group is
    initialised with gloo from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) — the Runner then
    skips its own initialisation — and the DDP wrapper gets
    ``device_ids=None``, the CPU form. Debugging and CI use it; GPU runs are
    unchanged.

    Returns:
        bool: Whether a CPU process group was set up.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise UserInputError(
            f'--launcher {launcher} needs CUDA GPUs, and none is available. '
            'On CPU, launch with torchrun (tools/dist_train.sh, '
            '--launcher pytorch), which uses the gloo backend.')
    if not dist.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        backend = dist_cfg.pop('backend', 'gloo')
        if backend != 'gloo':
            print_log(
                f'No CUDA device: using the gloo backend instead of '
                f'env_cfg.dist_cfg.backend="{backend}".',
                logger='current',
                level=logging.WARNING)
        if dist_cfg.get('timeout') is not None:
            dist_cfg['timeout'] = datetime.timedelta(
                seconds=dist_cfg['timeout'])
        dist.init_process_group(backend='gloo', **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:  # what the Runner builds without a wrapper config
        wrapper = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = dict(wrapper)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def disable_persistent_workers(cfg, force: bool = False) -> None:
    """``persistent_workers`` is invalid with ``num_workers=0``: drop it."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        if force or loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
