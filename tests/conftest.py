# Copyright (c) mmvireid contributors. All rights reserved.
"""Shared fixtures: synthetic toy data and tiny training configs."""
import os
import os.path as osp

# One OpenMP thread per process: pytest-xdist runs one worker per core, and
# tests launch subprocesses (tools, torchrun); more threads than cores makes
# PyTorch's CPU kernels spin and slows the suite several times over.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
# The toy CLIP pretraining test uses two threads (the demo's weights depend
# on it): idle OpenMP threads then sleep instead of spinning on the cores the
# other worker needs (scheduling only; the results are the same).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from toy_utils import make_toy_dataset, pretrain_toy_clip  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# The toy configs load their CLIP from {{$MMVIREID_TOY_CLIP_DIR:data/toy_clip}}.
# The mechanics tests get briefly pretrained weights of their own (real
# pretraining code and real loading path, a few steps) in a folder of this
# test process, never the user's data/toy_clip; set before any config is
# read, inherited by the tools the tests launch.
TOY_CLIP_DIR = tempfile.mkdtemp(prefix='mmvireid_toy_clip_')
os.environ['MMVIREID_TOY_CLIP_DIR'] = TOY_CLIP_DIR
# every process that imports this (pytest-xdist's controller too) cleans up
atexit.register(shutil.rmtree, TOY_CLIP_DIR, True)


@pytest.fixture(scope='session', autouse=True)
def toy_clip_weights():
    """Quick toy CLIP weights (both archs, ~5 s) where the configs look."""
    for arch in ('tiny_rn', 'tiny_vit'):
        path = osp.join(TOY_CLIP_DIR, f'{arch}.pth')
        if not osp.isfile(path):
            pretrain_toy_clip(arch, path, num_ids=32, steps=3, batch_size=16,
                              eval_ids=8, workers=1, log_interval=1000,
                              threads=1)
    return TOY_CLIP_DIR


@pytest.fixture(scope='session')
def toy_sysu_root(tmp_path_factory):
    """A 64-identity toy dataset in the SYSU-MM01 layout (about 3 s)."""
    root = tmp_path_factory.mktemp('toy_data') / 'toy_sysu'
    return make_toy_dataset('sysu', root, num_ids=64) + '/'
