# Copyright (c) mmvireid contributors. All rights reserved.
"""``tools/train.py CONFIG --rehearse``: every stage for a few iterations,
every stage switch, a checkpoint save and a resume, an evaluation."""
import os
import os.path as osp
import subprocess
import sys

from toy_utils import REPO_ROOT


def test_rehearse_runs_every_stage_and_resumes(toy_sysu_root, tmp_path):
    work_dir = str(tmp_path / 'wd')
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'),
        osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py'), '--work-dir',
        work_dir, '--rehearse', '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_sysu_root}',
        f'val_dataloader.dataset.data_root={toy_sysu_root}',
        f'test_dataloader.dataset.data_root={toy_sysu_root}'
    ]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert ('Rehearsal passed: stages [prompt, finetune], 2 iterations each'
            in out)
    # the real work directory holds only the rehearsal's folder
    (folder, ) = os.listdir(work_dir)
    assert folder.startswith('rehearsal_')
    files = set(os.listdir(osp.join(work_dir, folder)))
    assert {'epoch_1.pth', 'epoch_2.pth'} <= files
    # two runs: the first, and the one resumed from epoch_1.pth
    assert 'Resuming' in out or 'resumed' in out.lower()
    assert out.count('Epoch(val)') >= 2
