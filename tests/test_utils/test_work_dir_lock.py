# Copyright (c) mmvireid contributors. All rights reserved.
"""One run per work directory."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
from toy_utils import REPO_ROOT

from mmvireid.utils.work_dir_lock import (LOCK_NAME, WorkDirLock,
                                          WorkDirLockedError)


def test_second_run_refuses_and_names_the_first(tmp_path):
    work_dir = str(tmp_path / 'wd')
    with WorkDirLock(work_dir, command='train.py a.py'):
        info = json.load(open(osp.join(work_dir, LOCK_NAME)))
        assert info['pid'] == os.getpid()
        with pytest.raises(WorkDirLockedError) as exc:
            WorkDirLock(work_dir).acquire()
        msg = str(exc.value)
        assert f'pid {os.getpid()} on host {socket.gethostname()}' in msg
        assert 'train.py a.py' in msg and 'another --work-dir' in msg
    # released: the next run takes it
    assert not osp.exists(osp.join(work_dir, LOCK_NAME))
    WorkDirLock(work_dir).acquire().release()


def test_lock_of_a_dead_process_is_recovered(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps(dict(pid=dead.pid, host=socket.gethostname(),
                                    started='then', command='old run')))
    lock = WorkDirLock(str(tmp_path)).acquire()
    assert json.load(open(path))['pid'] == os.getpid()
    lock.release()


def test_lock_of_another_host_says_how_to_remove_it(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps(dict(pid=1, host='node-42', started='then',
                                    command='x')))
    with pytest.raises(WorkDirLockedError,
                       match=f'pid 1 on host node-42.*delete {path}'):
        WorkDirLock(str(tmp_path)).acquire()


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    WorkDirLock(str(tmp_path)).acquire()
    assert not osp.exists(tmp_path / LOCK_NAME)


def test_train_py_refuses_a_work_dir_in_use(toy_sysu_root, tmp_path):
    work_dir = str(tmp_path / 'wd')
    with WorkDirLock(work_dir, command='first run'):
        proc = subprocess.run(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
             osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py'),
             '--work-dir', work_dir, '--cfg-options',
             f'train_dataloader.dataset.data_root={toy_sysu_root}',
             f'val_dataloader.dataset.data_root={toy_sysu_root}',
             f'test_dataloader.dataset.data_root={toy_sysu_root}'],
            env=dict(os.environ, PYTHONPATH=REPO_ROOT),
            capture_output=True, text=True, timeout=600)
        # nothing written next to the first run's lock
        assert os.listdir(work_dir) == [LOCK_NAME]
    assert proc.returncode == 1
    assert 'is in use by another run' in proc.stderr
