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

The module is the one home of checkpoint logic other than writing (which is
:class:`~mmvireid.engine.hooks.AtomicCheckpointHook`): safe loading, fit
checks against a model, and which files of a work dir are complete.
"""
import ast
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import UserInputError

__all__ = [
    'safe_load_checkpoint', 'register_safe_checkpoint_loader',
    'UnsafeCheckpointError', 'CorruptCheckpointError', 'NotACheckpointError',
    'CheckpointMismatchError', 'resume_safe_globals', 'mismatched_shapes',
    'checkpoint_model_type', 'describe_mismatch', 'load_model_checkpoint',
    'is_complete_checkpoint', 'newest_complete_checkpoint'
]


_HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """Raised when a checkpoint would need code execution to be loaded."""


class CorruptCheckpointError(RuntimeError):
    """Raised when a checkpoint file is truncated or corrupt (e.g. a copy
    interrupted, or a run killed while writing it without atomic saving)."""


class NotACheckpointError(CorruptCheckpointError):
    """Raised when a file is not a PyTorch checkpoint at all (neither a zip
    archive nor a pickle)."""


class CheckpointMismatchError(UserInputError):
    """A checkpoint's tensors do not fit the model (missing or unexpected
    keys, other shapes): most often another method's or another config's
    checkpoint."""


#: First bytes of torch's zip format and of a (legacy) pickle stream.
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'


def _restricted_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` restricted to what checkpoints legitimately look up:
    ``numpy.dtypes.<Name>DType`` classes and the statistics methods
    (``min``/``max``/``mean``/``current``) a ``HistoryBuffer`` pickles."""
    # numpy.dtypes exists from numpy 1.25; it is only reached when a
    # checkpoint names it (saved by such a numpy)
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


def safe_load_checkpoint(filename: str,
                         map_location=None,
                         mmap: bool = False) -> Any:
    """Load a local checkpoint with torch's safe unpickler.

    Args:
        filename (str): Path of a ``.pth`` file.
        map_location: Same as :func:`torch.load`.
        mmap (bool): Map the tensors instead of reading them (zip-format
            checkpoints), for a quick look at ``meta``. Defaults to False.

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
    with open(filename, 'rb') as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO)):
        raise NotACheckpointError(
            f'{filename} is not a PyTorch checkpoint: it is neither a zip '
            f'archive (torch.save) nor a pickle (it starts with {head!r}). '
            'Check the path; a download or copy may have stored an error '
            'page or another file under this name.')
    try:
        with torch.serialization.safe_globals(resume_safe_globals()):
            return torch.load(
                filename,
                map_location=map_location,
                weights_only=True,
                mmap=mmap and head.startswith(_ZIP_MAGIC))
    except pickle.UnpicklingError as e:
        if not _names_a_global(str(e)):
            # a broken pickle stream, not a forbidden object
            raise CorruptCheckpointError(
                f'Checkpoint {filename} is corrupt or truncated and cannot '
                f'be read (UnpicklingError: {e}).') from e
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


def _names_a_global(message: str) -> bool:
    """Whether torch's weights-only unpickler refused a global (an object
    whose loading would run code), as opposed to unreadable bytes."""
    return bool(re.search(r'global|GLOBAL|Unsupported class|getattr',
                          message))


def mismatched_shapes(state_dict: Dict,
                      model_state: Dict) -> List[Tuple[str, tuple, tuple]]:
    """``(key, checkpoint shape, model shape)`` of every tensor of
    ``state_dict`` whose shape differs from the model's tensor of that key.

    A leading ``module.`` (a state dict saved from a DDP-wrapped model) is
    ignored, as mmengine's loader strips it.
    """
    out = []
    for key, value in state_dict.items():
        own_key = _strip_module(key)
        own = model_state.get(own_key)
        if own is None or not hasattr(value, 'shape'):
            continue
        if tuple(value.shape) != tuple(own.shape):
            out.append((own_key, tuple(value.shape), tuple(own.shape)))
    return out


def _strip_module(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


def checkpoint_model_type(checkpoint: Dict) -> Optional[str]:
    """The model ``type`` of the config a checkpoint was saved with (mmengine
    stores the config text in ``meta['cfg']``), or None.

    The text is parsed, not executed: the top-level ``model = dict(...)``
    assignment's own ``type`` keyword (not a nested component's).
    """
    cfg_text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(
        checkpoint, dict) else None
    if not isinstance(cfg_text, str):
        return None
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model'
                for t in node.targets) and isinstance(node.value, ast.Call):
            for keyword in node.value.keywords:
                if keyword.arg == 'type' and isinstance(
                        keyword.value, ast.Constant) and isinstance(
                            keyword.value.value, str):
                    return keyword.value.value
    return None


def _key_list(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)'
                    if len(keys) > limit else '')


def describe_mismatch(source: str, checkpoint: Dict,
                      model: torch.nn.Module) -> Optional[str]:
    """What does not fit between a checkpoint and a model, or None.

    Names the missing keys (in the model, not in the checkpoint), the
    unexpected ones, the tensors of another shape, and the model type the
    checkpoint was saved from when it differs from this model's class.
    """
    state = checkpoint.get('state_dict', checkpoint)
    state = {_strip_module(k): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = mismatched_shapes(state, own)
    if not (missing or unexpected or shapes):
        return None
    lines = [f'Checkpoint "{source}" does not fit the '
             f'{type(model).__name__} model of this config:']
    saved_type = checkpoint_model_type(checkpoint)
    if saved_type and saved_type.split('.')[-1] != type(model).__name__:
        lines.append(f'  it was saved from a {saved_type} model (another '
                     'method\'s checkpoint)')
    if missing:
        lines.append(f'  {len(missing)} tensor(s) of the model are missing '
                     f'from it: {_key_list(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} tensor(s) in it are not in the '
                     f'model: {_key_list(unexpected)}')
    if shapes:
        lines.append(f'  {len(shapes)} tensor(s) have another shape: ' +
                     _key_list([f'{k} (checkpoint {c}, model {m})'
                                for k, c, m in shapes]))
    return '\n'.join(lines)


def load_model_checkpoint(model: torch.nn.Module,
                          filename: str,
                          strict: bool = True,
                          logger: str = 'current') -> Dict:
    """Load a checkpoint's weights into ``model`` for evaluation or export.

    Args:
        model (nn.Module): The model built from the config.
        filename (str): Local checkpoint path.
        strict (bool): Refuse a checkpoint that does not fit the model
            exactly (the default: a half-random model would give wrong
            numbers without any error). With False, what does not fit is
            named in a warning, tensors of another shape are skipped and
            the rest is loaded.
        logger (str): mmengine logger for the non-strict warning.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        CheckpointMismatchError: ``strict`` and something does not fit; the
            message lists what.
    """
    checkpoint = safe_load_checkpoint(filename, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise NotACheckpointError(
            f'{filename} holds a {type(checkpoint).__name__}, not a '
            'checkpoint dict (state_dict or {"state_dict": ...}).')
    problem = describe_mismatch(filename, checkpoint, model)
    if problem and strict:
        raise CheckpointMismatchError(
            problem + '\nUse the config the checkpoint was trained with. '
            '--non-strict loads it anyway: missing tensors then keep their '
            'initialisation, so the numbers are not that model\'s.')
    if problem:
        print_log(problem + '\nLoading the tensors that fit (--non-strict).',
                  logger=logger, level=30)
    state = checkpoint.get('state_dict', checkpoint)
    own = model.state_dict()
    state = {
        _strip_module(k): v
        for k, v in state.items()
        if _strip_module(k) not in own or not hasattr(v, 'shape')
        or tuple(v.shape) == tuple(own[_strip_module(k)].shape)
    }
    model.load_state_dict(state, strict=False)
    return checkpoint


def load_from_local(filename, map_location):
    """mmengine's local-path loader, through :func:`safe_load_checkpoint`.

    The name matters: mmengine logs "Loads checkpoint by
    <name[10:]> backend from path: ...", so ``load_from_local`` prints
    "local" as its own loader does (a helper called ``_local_loader``
    printed "der").
    """
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
        prefixes='', loader=load_from_local, force=True)
    _REGISTERED = True


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a complete torch zip checkpoint (a kill while
    writing leaves no zip directory at the end)."""
    try:
        with open(path, 'rb') as f:
            if f.read(4) != b'PK\x03\x04':
                return False
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def newest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir`` with the largest
    N whose file is complete, or None."""
    found = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else ():
        match = re.fullmatch(r'(epoch|iter)_(\d+)\.pth', name)
        if match:
            found.append((int(match.group(2)), name))
    for _, name in sorted(found, reverse=True):
        path = osp.join(work_dir, name)
        if is_complete_checkpoint(path):
            return path
    return None
