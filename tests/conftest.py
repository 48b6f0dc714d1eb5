# Copyright (c) mmvireid contributors. All rights reserved.
"""Shared fixtures: synthetic toy data and tiny training configs."""
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def toy_sysu_root(tmp_path_factory):
    """A 64-identity toy dataset in the SYSU-MM01 layout (about 3 s)."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
    try:
        from make_toy_vireid import make_toy_dataset
    finally:
        sys.path.pop(0)
    root = tmp_path_factory.mktemp('toy_data') / 'toy_sysu'
    make_toy_dataset('sysu', str(root), num_ids=64, seed=0, verbose=False)
    return str(root) + '/'
