# Copyright (c) mmvireid contributors. All rights reserved.
"""Small helpers shared by ``tools/train.py`` and ``tools/test.py``."""
import os.path as osp
import sys
from typing import Callable

from mmengine.config import ConfigDict
from mmengine.logging import print_log

__all__ = [
    'preflight_datasets', 'apply_amp', 'check_resume_checkpoint', 'disable_persistent_workers',
    'run_or_explain', 'UserInputError'
]


class UserInputError(Exception):
    """An error in the user's input (paths, config values) rather than a bug.

    The tools print its message alone, without a traceback.
    """


def apply_amp(cfg) -> None:
    """Turn every optim wrapper of ``cfg`` into an ``AmpOptimWrapper``.

    Handles both a single wrapper and the per-stage wrappers of
    ``StageOptimWrapperConstructor``.
    """
    import torch
    if not torch.cuda.is_available():
        raise UserInputError(
            '--amp needs a CUDA device (mmengine AmpOptimWrapper asserts '
            'CUDA); none is available.')
    ow = cfg.optim_wrapper
    if ow.get('constructor') == 'StageOptimWrapperConstructor':
        stages = [v for k, v in ow.items() if k != 'constructor']
    else:
        stages = [ow]
    for stage_cfg in stages:
        if stage_cfg.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current')
            continue
        stage_cfg['type'] = 'AmpOptimWrapper'
        stage_cfg.setdefault('loss_scale', 'dynamic')


def preflight_datasets(cfg) -> None:
    """Fail within seconds when a dataset root is missing.

    Building a Runner first builds the model (seconds to minutes for real
    CLIP backbones); a dataset whose ``data_root`` does not exist is instead
    built right away, without pipeline, so its own error (which names the
    path and shows the expected layout) reaches the user at once.
    """
    import copy

    from mmvireid.registry import DATASETS
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        dataset = loader.get('dataset')
        if not isinstance(dataset, (dict, ConfigDict)):
            continue
        root = dataset.get('data_root')
        if root is None or osp.isdir(root):
            continue
        dataset = copy.deepcopy(dataset)
        dataset['pipeline'] = []
        DATASETS.build(dataset)  # raises the dataset's own layout error
        raise FileNotFoundError(
            f'{name}.dataset.data_root "{root}" does not exist')


def check_resume_checkpoint(path: str) -> None:
    """Fail fast when ``--resume PATH`` names no file."""
    if not osp.isfile(path):
        raise UserInputError(
            f'--resume: checkpoint "{path}" does not exist. Pass an existing '
            '.pth file, or --resume without a path to resume from the '
            'latest checkpoint of the work directory.')


def disable_persistent_workers(cfg, force: bool = False) -> None:
    """``persistent_workers`` is invalid with ``num_workers=0``: drop it."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        if force or loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def run_or_explain(fn: Callable):
    """Run ``fn``; user errors become one clear message and exit code 1.

    Missing files and :class:`UserInputError` are user errors: printing a
    deep traceback for "the dataset is not where the config says" only hides
    the message, which already names the path and the expected layout.
    """
    try:
        return fn()
    except (UserInputError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, FileNotFoundError) and e.args \
            and isinstance(e.args[0], str) else str(e)
        print(f'ERROR: {msg}', file=sys.stderr)
        sys.exit(1)
