# Copyright (c) mmvireid contributors. All rights reserved.
"""Shared fixtures: synthetic toy data and tiny training configs."""
import os
import os.path as osp

# One OpenMP thread per process: pytest-xdist runs one worker per core, and
# tests launch subprocesses (tools, torchrun); more threads than cores makes
# PyTorch's CPU kernels spin and slows the suite several times over.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import pytest  # noqa: E402
import torch  # noqa: E402
from toy_utils import make_toy_dataset  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def toy_sysu_root(tmp_path_factory):
    """A 64-identity toy dataset in the SYSU-MM01 layout (about 3 s)."""
    root = tmp_path_factory.mktemp('toy_data') / 'toy_sysu'
    return make_toy_dataset('sysu', root, num_ids=64) + '/'
