# Copyright (c) mmvireid contributors. All rights reserved.
"""One run per work directory.

Why: two runs started in the same work directory both finish with exit 0,
yet they share one log folder, write two values per epoch into one
``scalars.json`` and replace each other's checkpoints and config dumps. A
lock file makes the second run refuse, naming the first one.
"""
import errno
import json
import os
import os.path as osp
import socket
import time
from typing import Optional

from mmengine.logging import print_log

from .errors import UserInputError

__all__ = ['WorkDirLock', 'WorkDirLockedError', 'LOCK_NAME']

#: Name of the lock file inside the work directory.
LOCK_NAME = '.mmvireid.lock'


class WorkDirLockedError(UserInputError):
    """Another live run holds the work directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM  # exists, owned by another user
    return True


class WorkDirLock:
    """A lock file ``<work_dir>/.mmvireid.lock`` held for one run.

    The file is created atomically (``O_CREAT | O_EXCL``) and holds the pid,
    the host, the start time and the command line. A second run then refuses
    with :class:`WorkDirLockedError`. A lock whose process is gone (same
    host, pid not alive) is taken over with a warning; a lock of another
    host cannot be checked, so the message says how to remove it by hand.
    Under a distributed launch only global rank 0 (``RANK``) takes the lock.

    Use as a context manager, or :meth:`acquire` / :meth:`release`.

    Args:
        work_dir (str): The run's work directory (created if missing).
        command (str, optional): What to record as the run's command line.
    """

    def __init__(self, work_dir: str, command: Optional[str] = None) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self.command = command
        self.held = False

    def _info(self) -> dict:
        return dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.strftime('%Y-%m-%d %H:%M:%S'),
            command=self.command)

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def acquire(self) -> 'WorkDirLock':
        if int(os.environ.get('RANK', '0')) != 0:
            return self  # rank 0 holds the lock for the whole launch
        os.makedirs(self.work_dir, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, 'w') as f:
                json.dump(self._info(), f)
            self.held = True
            return self
        raise WorkDirLockedError(
            f'could not take the lock {self.path}: another run keeps '
            'creating it.')

    def _handle_existing(self) -> None:
        owner = self._read()
        if owner is None:
            # a lock being written this instant, or an empty one left by a
            # kill between create and write: give a writer a moment
            time.sleep(0.2)
            owner = self._read()
            if owner is None:
                print_log(f'Removing the unreadable lock file {self.path}.',
                          logger='current', level=30)
                self._remove()
                return
        pid, host = owner.get('pid'), owner.get('host')
        same_host = host == socket.gethostname()
        if same_host and isinstance(pid, int) and not _pid_alive(pid):
            print_log(
                f'Taking over the lock of work directory {self.work_dir}: '
                f'its run (pid {pid}, started {owner.get("started")}) is no '
                'longer alive.',
                logger='current',
                level=30)
            self._remove()
            return
        where = f'pid {pid} on host {host}'
        hint = (f'If that run is dead (it ran on another host, so this one '
                f'cannot tell), delete {self.path}.') if not same_host else \
            'Wait for it to finish, or stop it.'
        raise WorkDirLockedError(
            f'work directory "{self.work_dir}" is in use by another run '
            f'({where}, started {owner.get("started")}: '
            f'{owner.get("command")}). Two runs in one work directory '
            'overwrite each other\'s logs and checkpoints: give this run '
            f'another --work-dir. {hint}')

    def _remove(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if not self.held:
            return
        owner = self._read()
        if owner is not None and owner.get('pid') == os.getpid():
            self._remove()
        self.held = False

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
