# Copyright (c) mmvireid contributors. All rights reserved.
"""The command-line tools, run as a user runs them."""
import os
import os.path as osp
import resource
import subprocess
import sys

from toy_utils import REPO_ROOT


def _run_tool(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_train_without_dataset_stops_with_one_clear_message(tmp_path):
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = _run_tool([
        osp.join(REPO_ROOT, 'tools/train.py'),
        osp.join(REPO_ROOT, 'configs/clip_vireid_sysu.py'), '--work-dir',
        str(tmp_path / 'wd')
    ], cwd=str(tmp_path))
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds, not wall time: robust to a loaded machine
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('ERROR')]
    # one message, no traceback
    assert len(errors) == 1, proc.stderr
    assert ('SYSUMM01Dataset: the data_root folder "data/sysu_mm01/" does '
            'not exist') in errors[0], errors
    assert 'Traceback' not in proc.stderr
    assert 'MultiScaleDeformableAttention' not in proc.stderr
    # names the missing path and shows the expected layout
    assert 'data/sysu_mm01' in proc.stderr
    assert 'cam1' in proc.stderr and 'exp' in proc.stderr
    assert cpu < 15, cpu


def test_train_resume_missing_checkpoint(tmp_path):
    proc = _run_tool([
        osp.join(REPO_ROOT, 'tools/train.py'),
        osp.join(REPO_ROOT, 'configs/clip_vireid_toy.py'), '--resume',
        str(tmp_path / 'nope.pth')
    ], cwd=str(tmp_path))
    assert proc.returncode == 1
    assert 'nope.pth" does not exist' in proc.stderr
