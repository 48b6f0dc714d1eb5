# Copyright (c) mmvireid contributors. All rights reserved.
"""``--resume``: find, check and refuse checkpoints before a run starts."""
import logging
import os.path as osp
import zipfile
from typing import Optional

from mmengine.logging import print_log

from .checkpoint import (CheckpointMismatchError, checkpoint_model_type,
                         newest_complete_checkpoint, safe_load_checkpoint)
from .errors import UserInputError

__all__ = [
    'check_auto_resume',
    'check_resume_checkpoint',
    'check_resume_compatible',
    'newest_complete_checkpoint',
]


def check_auto_resume(work_dir: str) -> Optional[str]:
    """Check ``--resume`` without a path before the Runner starts.

    MMEngine resumes from the file named in ``<work_dir>/last_checkpoint``.
    When that file is missing or empty (e.g. a run killed before it was
    first written) but complete ``epoch_N.pth`` files exist, resuming falls
    back to the newest of them and says so; with no checkpoint at all,
    training starts from scratch (said too: a re-queued job relies on it).
    A file pointing to a checkpoint that does not exist is refused, naming
    both.

    Returns:
        str or None: A checkpoint to resume from explicitly (the fallback),
        or None to let mmengine follow ``last_checkpoint`` (or start
        afresh).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    target = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip() or None
    if target is None:
        fallback = newest_complete_checkpoint(work_dir)
        why = 'is empty' if osp.isfile(pointer) else 'does not exist'
        if fallback is not None:
            print_log(
                f'--resume: "{pointer}" {why} (a run killed before it was '
                f'written); resuming from the newest complete checkpoint '
                f'"{fallback}".',
                logger='current',
                level=logging.WARNING)
            return fallback
        print_log(
            f'--resume: no checkpoint in "{work_dir}"; training starts from '
            'scratch.',
            logger='current',
            level=logging.WARNING)
        return None
    if '://' not in target and not osp.isfile(target):
        raise UserInputError(
            f'--resume: "{pointer}" names the checkpoint "{target}", which '
            'does not exist. Resume from an existing checkpoint with '
            f'--resume {work_dir}/epoch_<N>.pth.')
    return None


def check_resume_checkpoint(path: str) -> None:
    """Fail fast when ``--resume PATH`` names no file or a truncated one.

    A checkpoint in torch's zip format (the default since torch 1.6) that
    does not end with a complete zip directory was cut short (an interrupted
    copy, or a kill while a non-atomic writer saved it). Files in the legacy
    format are left to the loader, which names them if they are corrupt.
    """
    if not osp.isfile(path):
        raise UserInputError(
            f'--resume: checkpoint "{path}" does not exist. Pass an existing '
            '.pth file, or --resume without a path to resume from the '
            'latest checkpoint of the work directory.')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if not magic or (magic == b'PK\x03\x04' and not zipfile.is_zipfile(path)):
        raise UserInputError(
            f'--resume: checkpoint "{path}" is corrupt or truncated (empty, '
            'or its zip directory is missing). Resume from an earlier '
            'checkpoint of the same work directory.')


def check_resume_compatible(cfg, path: str) -> None:
    """Before anything is written: the checkpoint to resume must come from
    this config's method (the model type in its saved config) and from a
    stage plan this one can continue (:func:`check_resume_plan`). Its
    tensors are compared with the model when the Runner loads it."""
    # the engine imports mmvireid.utils at module level: importing it at
    # the top of this module would be a cycle
    from mmvireid.engine.runner import check_resume_plan
    checkpoint = safe_load_checkpoint(path, map_location='cpu', mmap=True)
    if not isinstance(checkpoint, dict):
        return
    saved = checkpoint_model_type(checkpoint)
    own = (cfg.get('model') or {}).get('type')
    if saved and isinstance(own, str) and \
            saved.split('.')[-1] != own.split('.')[-1]:
        raise CheckpointMismatchError(
            f'--resume: checkpoint "{path}" was saved by a {saved} model, '
            f'but this config trains a {own}. Resume with the config it '
            'was trained with, or start a new work directory.')
    stages = (cfg.get('train_cfg') or {}).get('stages')
    if stages:
        check_resume_plan(stages, checkpoint.get('meta') or {})
