# Copyright (c) mmvireid contributors. All rights reserved.
"""Atomic file writes: a reader (or a restarted run) never sees a partial file.

Why: a cluster job can be killed at any instant, including while it writes a
checkpoint or a results file. Writing to a temporary file and renaming it into
place leaves either the old file or the complete new one.
:class:`~mmvireid.engine.hooks.AtomicCheckpointHook` saves checkpoints through
:class:`AtomicLocalBackend`; the tools write their results with
:func:`atomic_write`.
"""
import errno
import os
import os.path as osp
import re
import uuid
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = [
    'atomic_write', 'remove_stale_temp_files', 'AtomicLocalBackend',
    'DiskFullError', 'TMP_SUFFIX'
]

#: Suffix of the temporary files :func:`atomic_write` renames into place;
#: files with it that a killed run left behind are removed on the next start.
TMP_SUFFIX = '.mmvireid-tmp'
_TMP_PATTERN = re.compile(r'^\..+\.[0-9a-f]{12}' + re.escape(TMP_SUFFIX) + '$')


def _fsync_dir(dirname: str) -> None:
    """Make a rename in ``dirname`` durable (POSIX); a no-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str,
                 data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file.

    The data go to a hidden temporary file in the same folder
    (``.<name>.<12 hex digits>.mmvireid-tmp``), are flushed to disk, and the
    file is renamed over ``path`` with :func:`os.replace`, which is atomic on
    POSIX and Windows. A kill at any moment leaves either the previous
    ``path`` (or none) or the complete new one, plus at worst the temporary
    file.

    Args:
        path (str): Destination file.
        data (bytes | str): Content; ``str`` is encoded with ``encoding``.
        encoding (str): Text encoding. Defaults to 'utf-8'.
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    path = osp.abspath(str(path))
    dirname = osp.dirname(path)
    os.makedirs(dirname, exist_ok=True)
    tmp = osp.join(
        dirname, f'.{osp.basename(path)}.{uuid.uuid4().hex[:12]}'
        f'{TMP_SUFFIX}')
    # 0o666 filtered by the umask: the permissions open(path, 'wb') would
    # give (tempfile.mkstemp would make checkpoints private to the owner).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            # the bare "[Errno 28] No space left on device" names no file
            raise DiskFullError(
                e.errno, f'{os.strerror(e.errno)} while writing "{path}" '
                f'({len(data)} bytes): free space on that disk or move '
                'work_dir elsewhere. The previous version of the file, if '
                'any, is unchanged', path) from e
        raise
    _fsync_dir(dirname)


def remove_stale_temp_files(dirname: str) -> List[str]:
    """Delete the temporary files of :func:`atomic_write` in ``dirname``
    (left by a run killed while saving). Returns the removed paths."""
    if not osp.isdir(dirname):
        return []
    removed = []
    for name in sorted(os.listdir(dirname)):
        if _TMP_PATTERN.match(name):
            path = osp.join(dirname, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``
    (see :func:`atomic_write`). Selected with
    ``backend_args=dict(backend='atomic_local')``."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj, encoding=encoding)


register_backend('atomic_local', AtomicLocalBackend, force=True)


class DiskFullError(OSError):
    """A write failed for lack of space (or quota); the message names the
    file."""

    def __str__(self) -> str:
        return self.strerror
