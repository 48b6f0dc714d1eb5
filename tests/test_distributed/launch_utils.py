# Copyright (c) mmvireid contributors. All rights reserved.
"""Run ``tools/train.py`` / ``tools/dist_train.sh`` in subprocesses as users
do, and read what :mod:`train_probe` recorded.

Shared by ``tests/test_distributed`` and
``tests/test_integration/test_kill_resume.py``.
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List

HERE = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(HERE))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
DIST_TRAIN = osp.join(REPO_ROOT, 'tools', 'dist_train.sh')

#: Seconds a training subprocess may take before the test gives up.
TIMEOUT = 420


def make_toy_data(root: str, num_ids: int = 12) -> str:
    """A toy SYSU-layout dataset (12 ids: 8 train ids, 164 train images,
    4 test ids; about 2 s). Returns the root with a trailing '/'."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
    try:
        from make_toy_vireid import make_toy_dataset
    finally:
        sys.path.pop(0)
    make_toy_dataset('sysu', root, num_ids=num_ids, seed=0, verbose=False)
    return root.rstrip('/') + '/'


def child_env(probe_dir: str, **extra: str) -> Dict[str, str]:
    """Environment of a training subprocess: one thread per process (two
    cores are shared, and it keeps CPU float results reproducible),
    mmvireid and the probe importable, this interpreter as the launch
    scripts' ``PYTHON`` (they run ``$PYTHON -m torch.distributed.run``) and
    first on PATH."""
    env = dict(os.environ)
    for key in ('PROBE_PAUSE_AT_ITER', 'PROBE_PAUSE_IN_SAVE'):
        env.pop(key, None)
    env.update(
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [REPO_ROOT, HERE, env.get('PYTHONPATH', '')]),
        PATH=os.pathsep.join(
            [osp.dirname(sys.executable),
             env.get('PATH', '')]),
        PYTHON=sys.executable,
        PROBE_DIR=probe_dir,
        PYTHONWARNINGS='ignore')
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train_cmd(config: str, work_dir: str, *args: str) -> List[str]:
    return [sys.executable, TRAIN, config, '--work-dir', work_dir, *args]


def dist_train_cmd(config: str, work_dir: str, nproc: int, *args:
                   str) -> List[str]:
    """``tools/dist_train.sh CONFIG NPROC --work-dir ...`` (torch's
    launcher)."""
    return [
        'bash', DIST_TRAIN, config,
        str(nproc), '--work-dir', work_dir, *args
    ]


def start(cmd: List[str], env: Dict[str, str], log: str) -> subprocess.Popen:
    """Start ``cmd`` with stdout and stderr going to ``log``."""
    with open(log, 'w') as f:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True)


def _tail(log: str, n: int = 40) -> str:
    with open(log, errors='replace') as f:
        return ''.join(f.readlines()[-n:])


def wait_ok(proc: subprocess.Popen,
            log: str,
            timeout: float = TIMEOUT) -> None:
    """Wait for ``proc``; fail with the end of its log unless it exits 0."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f'timed out after {timeout} s:\n{_tail(log)}')
    assert rc == 0, f'exit code {rc}:\n{_tail(log)}'


def run_until_paused(cmd: List[str],
                     env: Dict[str, str],
                     probe_dir: str,
                     log: str,
                     timeout: float = TIMEOUT) -> int:
    """Run ``cmd`` until the probe reports it paused, then ``kill -9`` it.

    Returns:
        int: The return code (``-SIGKILL``).
    """
    marker = osp.join(probe_dir, 'paused')
    if osp.exists(marker):
        os.remove(marker)
    proc = start(cmd, env, log)
    deadline = time.monotonic() + timeout
    while not osp.exists(marker):
        if proc.poll() is not None:
            raise AssertionError(
                f'exited ({proc.returncode}) before the kill point:\n'
                f'{_tail(log)}')
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f'never paused:\n{_tail(log)}')
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


def read_jsonl(path: str) -> List[dict]:
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_config(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return path
