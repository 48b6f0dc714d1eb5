# Copyright (c) mmvireid contributors. All rights reserved.
"""RegDB index files against a reference-style reader
(docs/en/protocols.md §3)."""
import os
import os.path as osp

import numpy as np
import pytest

from mmvireid.datasets import RegDBDataset
from mmvireid.registry import DATASETS


def make_regdb(root, trials=(1, 2, 3), num_ids=10, per_id=3, seed=0):
    """A fake RegDB tree; train labels are NOT contiguous on purpose."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'idx'), exist_ok=True)
    for pid in range(1, num_ids + 1):
        for folder in ('Visible', 'Thermal'):
            os.makedirs(osp.join(root, folder, str(pid)), exist_ok=True)
            for k in range(per_id):
                tag = folder[0].lower()
                open(
                    osp.join(root, folder, str(pid),
                             f'male_{tag}_{pid:05d}_{k}.bmp'), 'wb').close()
    for t in trials:
        order = rng.permutation(num_ids) + 1
        half = num_ids // 2
        for split, ids in (('train', order[:half]), ('test', order[half:])):
            for folder, name in (('Visible', 'visible'), ('Thermal',
                                                          'thermal')):
                tag = folder[0].lower()
                # Labels: pid * 10 (train is relabelled, test is kept).
                lines = [
                    f'{folder}/{pid}/male_{tag}_{pid:05d}_{k}.bmp {pid * 10}'
                    for pid in ids for k in range(per_id)
                ]
                with open(
                        osp.join(root, 'idx', f'{split}_{name}_{t}.txt'),
                        'w') as f:
                    f.write('\n'.join(lines) + '\n')
    return root


def ref_read(root, split, modal, trial):
    """What the reference's loaders return (path, label) for one list."""
    path = root + '/' + f'idx/{split}_{modal}_{trial}.txt'
    with open(path) as f:
        lines = f.read().splitlines()
    files = [root + '/' + line.split(' ')[0] for line in lines]
    labels = [int(line.split(' ')[1]) for line in lines]
    return files, labels


@pytest.fixture(scope='module')
def regdb_root(tmp_path_factory):
    return make_regdb(str(tmp_path_factory.mktemp('regdb_root')))


def _rel(paths, root):
    return [osp.relpath(osp.normpath(p), root) for p in paths]


@pytest.mark.parametrize('trial', [1, 2, 3])
def test_test_split_matches_reference(regdb_root, trial):
    vis, vis_l = ref_read(regdb_root, 'test', 'visible', trial)
    ir, ir_l = ref_read(regdb_root, 'test', 'thermal', trial)
    both = RegDBDataset(regdb_root, split='test', trial=trial).get_data_list()
    assert _rel([d['img_path'] for d in both], regdb_root) == \
        _rel(vis + ir, regdb_root)
    assert [d['gt_label'] for d in both] == vis_l + ir_l  # original labels
    assert [d['modality'] for d in both] == ['vis'] * len(vis) + \
        ['ir'] * len(ir)
    assert [d['cam_id'] for d in both] == [1] * len(vis) + [2] * len(ir)
    only_ir = RegDBDataset(
        regdb_root, split='test', trial=trial, modality='ir').get_data_list()
    assert only_ir == both[len(vis):]
    only_vis = RegDBDataset(
        regdb_root, split='test', trial=trial, modality='vis').get_data_list()
    assert only_vis == both[:len(vis)]


def test_train_split_relabels(regdb_root):
    for trial in (1, 2):
        ds = RegDBDataset(regdb_root, split='train', trial=trial)
        vis, vis_l = ref_read(regdb_root, 'train', 'visible', trial)
        ir, ir_l = ref_read(regdb_root, 'train', 'thermal', trial)
        items = ds.get_data_list()
        assert _rel([d['img_path'] for d in items], regdb_root) == \
            _rel(vis + ir, regdb_root)
        # Labels pid*10 become 0..C-1 in ascending pid order.
        rank = {lab: i for i, lab in enumerate(sorted(set(ir_l)))}
        assert list(ds.get_labels()) == [rank[x] for x in vis_l + ir_l]
        assert ds.num_classes == 5 == len(set(ds.get_labels()))
        assert not ds.test_mode
        # The filter keeps one modality and does not change the labels.
        only_vis = RegDBDataset(
            regdb_root, split='train', trial=trial, modality='vis')
        np.testing.assert_array_equal(only_vis.get_labels(),
                                      ds.get_labels()[:len(vis)])
        assert only_vis.num_classes == 5


def test_test_split_is_disjoint_from_train(regdb_root):
    train = RegDBDataset(regdb_root, split='train', trial=3).get_data_list()
    test = RegDBDataset(regdb_root, split='test', trial=3).get_data_list()
    train_paths = {d['img_path'] for d in train}
    assert not train_paths & {d['img_path'] for d in test}
    assert len(train) + len(test) == 10 * 2 * 3


def test_errors(regdb_root, tmp_path):
    with pytest.raises(ValueError, match=r'trial must be an int in 1\.\.10'):
        RegDBDataset(regdb_root, split='test', trial=0)
    with pytest.raises(ValueError, match=r'trial must be an int in 1\.\.10'):
        RegDBDataset(regdb_root, split='test', trial=11)
    with pytest.raises(ValueError, match='modality must be None'):
        RegDBDataset(regdb_root, split='test', modality='thermal')
    with pytest.raises(ValueError, match='split must be one of'):
        RegDBDataset(regdb_root, split='query')
    # Trial 4 has no index files in the fake tree.
    with pytest.raises(FileNotFoundError) as err:
        RegDBDataset(regdb_root, split='test', trial=4)
    msg = str(err.value)
    assert 'idx/test_visible_4.txt" does not exist' in msg
    assert 'Thermal/<pid>/' in msg and 'train_visible_{1..10}.txt' in msg

    root = make_regdb(str(tmp_path / 'bad'), trials=(1, ))
    with open(osp.join(root, 'idx', 'test_thermal_1.txt'), 'a') as f:
        f.write('Thermal/1/no_label.bmp\n')
    with pytest.raises(
            ValueError,
            match=r'Line 16 of ".*test_thermal_1.txt" '
            r'is "Thermal/1/no_label.bmp"'):
        RegDBDataset(root, split='test', trial=1)

    with open(osp.join(root, 'idx', 'train_visible_1.txt'), 'a') as f:
        # pid 999 is no test id (an overlap would be reported first)
        f.write('Visible/999/extra.bmp 777\n')
    with pytest.raises(
            ValueError,
            match='Person id 777 has visible training '
            'images but no infrared one'):
        RegDBDataset(root, split='train', trial=1)


def test_registry_and_lazy_init(regdb_root):
    ds = DATASETS.build(
        dict(
            type='RegDBDataset',
            data_root=regdb_root,
            split='test',
            trial=2,
            lazy_init=True))
    assert ds.metainfo['trial'] == 2 and ds.metainfo['dataset_name'] == \
        'regdb'
    assert len(ds) == 5 * 3 * 2 and ds.test_mode
    assert (ds.get_modalities() == np.array(['vis'] * 15 + ['ir'] * 15)).all()
