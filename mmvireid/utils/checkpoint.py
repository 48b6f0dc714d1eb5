# Copyright (c) mmvireid contributors. All rights reserved.
"""Checkpoint loading that works on torch >= 2.6 without executing pickled code.

Why this exists: mmengine 0.10.7 calls ``torch.load(path)`` with no
``weights_only`` argument. Since torch 2.6 that means ``weights_only=True``,
which refuses the objects a *resume* checkpoint holds (the message hub keeps
``HistoryBuffer`` objects with numpy arrays and numpy scalars), so
``--resume`` crashes (mmengine#1655; fixed upstream only after 0.10.7).
Turning ``weights_only`` off would let a crafted checkpoint run arbitrary
code. Instead we keep torch's safe unpickler and allow-list exactly the types
a resume checkpoint needs. numpy pickles its dtype classes as
``getattr(numpy.dtypes, '<Name>DType')``; allow-listing the real ``getattr``
(``HistoryBuffer`` pickles its statistics methods the same way)
would defeat the safety check, so that name is bound to
:func:`_restricted_getattr`, which resolves only those.
"""
import os.path as osp
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'safe_load_checkpoint', 'register_safe_checkpoint_loader',
    'UnsafeCheckpointError', 'CorruptCheckpointError', 'resume_safe_globals'
]


_HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """Raised when a checkpoint would need code execution to be loaded."""


class CorruptCheckpointError(RuntimeError):
    """Raised when a checkpoint file is truncated or corrupt (e.g. a copy
    interrupted, or a run killed while writing it without atomic saving)."""


def _restricted_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` restricted to what checkpoints legitimately look up:
    ``numpy.dtypes.<Name>DType`` classes and the statistics methods
    (``min``/``max``/``mean``/``current``) a ``HistoryBuffer`` pickles."""
    import numpy.dtypes as np_dtypes
    if obj is np_dtypes and isinstance(name, str) and name.endswith('DType'):
        return getattr(np_dtypes, name)
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(
        f'refusing getattr({obj!r}, {name!r}) while unpickling a checkpoint: '
        'only numpy dtype classes and HistoryBuffer statistics may be looked '
        'up')


def resume_safe_globals() -> List[Any]:
    """The allow-list of globals a mmengine resume checkpoint may reference."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
        reconstruct_name = 'numpy._core.multiarray._reconstruct'
        scalar_name = 'numpy._core.multiarray.scalar'
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
        reconstruct_name = 'numpy.core.multiarray._reconstruct'
        scalar_name = 'numpy.core.multiarray.scalar'
    allowed: List[Any] = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        (_reconstruct, reconstruct_name),
        (scalar, scalar_name),
        (_restricted_getattr, 'builtins.getattr'),
    ]
    try:
        import numpy.dtypes as np_dtypes
        allowed += [
            getattr(np_dtypes, n) for n in dir(np_dtypes)
            if n.endswith('DType')
        ]
    except ImportError:  # pragma: no cover - numpy < 1.25
        pass
    return allowed


def safe_load_checkpoint(filename: str, map_location=None) -> Any:
    """Load a local checkpoint with torch's safe unpickler.

    Args:
        filename (str): Path of a ``.pth`` file.
        map_location: Same as :func:`torch.load`.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: the file references a global outside the
            allow-list, i.e. loading it would execute code. The message names
            the file and the offending global.
        CorruptCheckpointError: the file is not a readable torch checkpoint
            (truncated or corrupt); the message names the file. It is a
            ``RuntimeError``.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        with torch.serialization.safe_globals(resume_safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename}: it references objects '
            'outside the allow-list of a mmvireid/mmengine checkpoint, so '
            'loading it could execute code. If you trust this file, load it '
            'yourself with torch.load(..., weights_only=False) and re-save '
            f'its state_dict. Details: {e}') from e
    except (RuntimeError, EOFError, ValueError) as e:
        raise CorruptCheckpointError(
            f'Checkpoint {filename} is corrupt or truncated and cannot be '
            f'read ({type(e).__name__}: {e}).') from e


def _local_loader(filename, map_location):
    return safe_load_checkpoint(filename, map_location)


_REGISTERED = False


def register_safe_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints through :func:`safe_load_checkpoint`.

    Idempotent. Called by :func:`mmvireid.utils.register_all_modules` and on
    ``import mmvireid.utils``.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    # '' is the fallback prefix mmengine uses for local paths.
    CheckpointLoader.register_scheme(
        prefixes='', loader=_local_loader, force=True)
    _REGISTERED = True
