# Copyright (c) mmvireid contributors. All rights reserved.
"""LLCM selection against a reference-style walk (docs/en/protocols.md §4).

The reference parses tags by splitting the whole path at its first 'cam', so
the restated reference runs inside the data root with a relative path (''),
where no stray 'cam' can occur. Our dataset is given an absolute root whose
name contains 'cam' on purpose: its tags must not depend on the root.
"""
import os
import os.path as osp
import random

import numpy as np
import pytest

from mmvireid.datasets import LLCMDataset
from mmvireid.datasets.llcm import camera_from_path
from mmvireid.registry import DATASETS

# 7 twice (kept). Every test id has images of both modalities (a listed
# test id without them is an error, see test_split_sanity.py).
TEST_IDS = [40, 7, 12, 7]
VIS_CAMS = ['test_vis/cam%d' % c for c in range(1, 10)]
NIR_CAMS = ['test_nir/cam%d' % c for c in (1, 2, 4, 5, 6, 7, 8, 9)]


def _touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'wb').close()


def make_llcm(root, seed=0):
    rng = np.random.default_rng(seed)
    for pid in (40, 7, 12):
        for folder in VIS_CAMS + NIR_CAMS + ['test_nir/cam3']:
            # keep one folder per modality, drop others at random
            keep = folder in ('test_vis/cam1', 'test_nir/cam2')
            if not keep and rng.random() < 0.5:
                continue
            for n in rng.choice(500, rng.integers(1, 5), replace=False):
                _touch(
                    osp.join(root, folder, f'{pid:04d}',
                             f'{pid:04d}_c{folder[-1]}_{n:03d}.jpg'))
    lists = dict(vis=[], nir=[])
    for label, pid in enumerate((3, 5, 9)):
        for mod in ('vis', 'nir'):
            for cam in (1, 4) if mod == 'vis' else (2, 8):
                for k in range(2):
                    rel = f'train_{mod}/cam{cam}/{pid:04d}/{pid:04d}_{k}.jpg'
                    _touch(osp.join(root, rel))
                    # labels 10, 20, 30: relabelled to 0, 1, 2
                    lists[mod].append(f'{rel} {10 * (label + 1)}')
    os.makedirs(osp.join(root, 'idx'), exist_ok=True)
    for mod in ('vis', 'nir'):
        with open(osp.join(root, 'idx', f'train_{mod}.txt'), 'w') as f:
            f.write('\n'.join(lists[mod]) + '\n')
    with open(osp.join(root, 'idx', 'test_id.txt'), 'w') as f:
        f.write(','.join(map(str, TEST_IDS)) + '\n')
    return root


# ---------------------------------------------------------------------- #
# The reference, restated (run with the data root as working directory)
# ---------------------------------------------------------------------- #
def ref_ids(data_path):
    with open(os.path.join(data_path, 'idx/test_id.txt')) as f:
        first = f.read().splitlines()[0]
    return sorted('%04d' % int(x) for x in first.split(','))


def ref_tags(path):
    after = path.split('cam')[1]
    return int(after[0]), int(after[2:6])


def ref_listing(data_path, mode, trial=None):
    """mode 1 = visible, 2 = near-infrared; trial None = every file."""
    if trial is not None:
        random.seed(trial)
    cams = VIS_CAMS if mode == 1 else NIR_CAMS
    out = []
    for pid in ref_ids(data_path):
        for cam in cams:
            d = os.path.join(data_path, cam, pid)
            if os.path.isdir(d):
                files = sorted([d + '/' + n for n in os.listdir(d)])
                if trial is None:
                    out.extend(files)
                else:
                    out.append(random.choice(files))
    return [(p, ) + ref_tags(p) for p in out]


@pytest.fixture(scope='module')
def llcm_root(tmp_path_factory):
    return make_llcm(str(tmp_path_factory.mktemp('camera_llcm')))


def ours(items, root):
    return [(osp.relpath(d['img_path'], root), d['cam_id'], d['gt_label'])
            for d in items]


def reference(root, mode, trial=None):
    cwd = os.getcwd()
    state = random.getstate()
    os.chdir(root)
    try:
        return ref_listing('', mode, trial)
    finally:
        os.chdir(cwd)
        random.setstate(state)


@pytest.mark.parametrize('trial', [0, 1, 5, 9])
def test_query_gallery_match_deen(llcm_root, trial):
    state = random.getstate()

    def load(split, **kw):
        return ours(
            LLCMDataset(llcm_root, split=split, trial=trial,
                        **kw).get_data_list(), llcm_root)

    # DEEN test_mode [1, 2]: all NIR queries, sampled visible gallery.
    assert load('query') == reference(llcm_root, 2)
    assert load('gallery') == reference(llcm_root, 1, trial)
    # Visible queries against a sampled NIR gallery.
    assert load('query', modality='vis') == reference(llcm_root, 1)
    assert load('gallery', modality='vis') == reference(llcm_root, 2, trial)
    # DEEN test_mode [2, 1]: sampled NIR rows against all visible images.
    assert load('query', sample_side='query') == \
        reference(llcm_root, 2, trial)
    assert load('gallery', sample_side='query') == reference(llcm_root, 1)
    assert random.getstate() == state


def test_query_modality_and_missing_nir_cam3(llcm_root):
    query = LLCMDataset(llcm_root, split='query').get_data_list()
    assert {d['modality'] for d in query} == {'ir'}
    assert 3 not in {d['cam_id'] for d in query}  # there is no NIR cam3
    assert os.listdir(osp.join(llcm_root, 'test_nir', 'cam3'))  # yet it exists
    gallery = LLCMDataset(llcm_root, split='gallery').get_data_list()
    assert {d['modality'] for d in gallery} == {'vis'}
    pids = [d['gt_label'] for d in query]
    assert pids.count(7) % 2 == 0  # duplicate kept


def test_test_split(llcm_root):
    ds = LLCMDataset(llcm_root, split='test')
    vis, nir = reference(llcm_root, 1), reference(llcm_root, 2)
    assert ours(ds.get_data_list(), llcm_root) == vis + nir
    assert list(ds.get_modalities()) == ['vis'] * len(vis) + \
        ['ir'] * len(nir)
    assert ds.test_mode and ds.metainfo['modality'] == 'ir'


def test_train_lists(llcm_root):
    ds = LLCMDataset(llcm_root, split='train')
    items = ds.get_data_list()
    assert [
        osp.relpath(d['img_path'], llcm_root).split(os.sep)[0] for d in items
    ] == ['train_vis'] * 12 + ['train_nir'] * 12
    assert list(ds.get_labels()) == [0] * 4 + [1] * 4 + [2] * 4 + \
        [0] * 4 + [1] * 4 + [2] * 4
    assert list(ds.get_cam_ids()[:4]) == [1, 1, 4, 4]
    assert list(ds.get_cam_ids()[12:16]) == [2, 2, 8, 8]
    assert ds.num_classes == 3
    assert camera_from_path('train_vis/0001/x.jpg') == -1
    assert camera_from_path('a/cam12/0001/cam3.jpg') == 12


def test_errors(llcm_root, tmp_path):
    with pytest.raises(ValueError, match='modality \\(of the queries\\) must'):
        LLCMDataset(llcm_root, split='query', modality='nir')
    with pytest.raises(ValueError, match='sample_side must be'):
        LLCMDataset(llcm_root, split='query', sample_side='both')
    root = str(tmp_path / 'partial')
    os.makedirs(osp.join(root, 'idx'))
    with open(osp.join(root, 'idx', 'test_id.txt'), 'w') as f:
        f.write('1\n')
    with pytest.raises(FileNotFoundError) as err:
        LLCMDataset(root, split='query')
    assert 'test_nir test folder' in str(err.value)
    assert 'test_nir/cam1,cam2,cam4..cam9/' in str(err.value)
    with pytest.raises(
            FileNotFoundError,
            match=r'training index file ".*idx/train_vis.txt"'):
        LLCMDataset(root, split='train')


def test_registry_lazy(llcm_root):
    ds = DATASETS.build(
        dict(
            type='LLCMDataset',
            data_root=llcm_root,
            split='gallery',
            trial=3,
            lazy_init=True))
    assert not ds._fully_initialized
    assert len(ds) == len(reference(llcm_root, 1, 3))
