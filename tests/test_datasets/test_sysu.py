# Copyright (c) mmvireid contributors. All rights reserved.
"""SYSU-MM01 file selection against a reference-style walk of a fake tree.

The ``ref_*`` functions below restate, in plain loops, what the public
reference code does (docs/en/protocols.md §2): ``os.listdir`` per folder,
global ``random.seed(trial)`` + ``random.choice``, and the fixed string
offsets for the tags. Our dataset must give the same files in the same order.
"""
import os
import os.path as osp
import random

import numpy as np
import pytest

from mmvireid.datasets import SYSUMM01Dataset
from mmvireid.registry import DATASETS
from mmvireid.structures import draw_single_shot, group_consecutive

TRAIN_IDS = [3, 1, 7, 12, 5]
VAL_IDS = [20, 2]
# 14 is listed twice (kept). Every test id has images of both modalities
# (a listed test id without them is an error, see test_split_sanity.py).
TEST_IDS = [14, 8, 30, 11, 14, 25]


def _touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'wb').close()


def make_sysu(root, seed=0, min_files=1, max_files=7, ir_less=()):
    """A fake SYSU-MM01 tree with random folders and random file counts."""
    rng = np.random.default_rng(seed)
    for pid in TRAIN_IDS + VAL_IDS + sorted(set(TEST_IDS)):
        for cam in range(1, 7):
            if cam in (3, 6) and pid in ir_less:
                continue
            # Keep at least one visible and one IR folder per id; drop
            # others at random.
            if cam not in (1, 3) and rng.random() < 0.25:
                continue
            names = rng.choice(
                9999, rng.integers(min_files, max_files + 1),
                replace=False) + 1
            for n in names:
                _touch(
                    osp.join(root, f'cam{cam}', f'{pid:04d}', f'{n:04d}.jpg'))
    for cam in range(1, 7):
        os.makedirs(osp.join(root, f'cam{cam}'), exist_ok=True)
    os.makedirs(osp.join(root, 'exp'), exist_ok=True)
    for name, ids in (('train', TRAIN_IDS), ('val', VAL_IDS), ('test',
                                                               TEST_IDS)):
        with open(osp.join(root, 'exp', f'{name}_id.txt'), 'w') as f:
            # A second line must be ignored, as in the reference.
            f.write(','.join(map(str, ids)) + '\n999\n')
    return root


# ---------------------------------------------------------------------- #
# The reference, restated
# ---------------------------------------------------------------------- #
def ref_ids(root, names):
    ids = []
    for name in names:
        with open(os.path.join(root, 'exp', name)) as f:
            first_line = f.read().splitlines()[0]
        ids += ['%04d' % int(tok) for tok in first_line.split(',')]
    return ids


def ref_walk(root, cams, ids):
    out = []
    for pid in sorted(ids):
        for cam in cams:
            d = os.path.join(root, cam, pid)
            if os.path.isdir(d):
                out.append(sorted([d + '/' + n for n in os.listdir(d)]))
    return out


def ref_tags(path):
    # fixed offsets from the end: right for 8-character names only
    return int(path[-15]), int(path[-13:-9])


def ref_query(root):
    folders = ref_walk(root, ['cam3', 'cam6'], ref_ids(root, ['test_id.txt']))
    return [p for files in folders for p in files]


def ref_gallery(root, mode, trial):
    random.seed(trial)
    cams = ['cam1', 'cam2', 'cam4', 'cam5'] if mode == 'all' \
        else ['cam1', 'cam2']
    folders = ref_walk(root, cams, ref_ids(root, ['test_id.txt']))
    return [random.choice(files) for files in folders]


def ref_gallery_multi(root, mode, trial):
    # CSDN draws from numpy's global state; seeding it with the trial is the
    # documented, reproducible equivalent we implement.
    np.random.seed(trial)
    cams = ['cam1', 'cam2', 'cam4', 'cam5'] if mode == 'all' \
        else ['cam1', 'cam2']
    folders = ref_walk(root, cams, ref_ids(root, ['test_id.txt']))
    picks = []
    for files in folders:
        picks.extend(np.random.choice(files, 10, replace=False))
    return [str(p) for p in picks]


def ref_train(root):
    ids = ref_ids(root, ['train_id.txt', 'val_id.txt'])
    rgb = [
        p for f in ref_walk(root, ['cam1', 'cam2', 'cam4', 'cam5'], ids)
        for p in f
    ]
    ir = [p for f in ref_walk(root, ['cam3', 'cam6'], ids) for p in f]
    # The reference enumerates a set of the IR pids; for small ints CPython
    # iterates it in ascending order, which sorted() states explicitly.
    pid2label = {
        pid: i
        for i, pid in enumerate(sorted({ref_tags(p)[1]
                                        for p in ir}))
    }
    rgb_labels = [pid2label[ref_tags(p)[1]] for p in rgb]
    ir_labels = [pid2label[ref_tags(p)[1]] for p in ir]
    return rgb, rgb_labels, ir, ir_labels


def rel(items, root):
    return [osp.relpath(d['img_path'], root) for d in items]


def rel_ref(paths, root):
    return [osp.relpath(p, root) for p in paths]


@pytest.fixture(scope='module')
def sysu_root(tmp_path_factory):
    return make_sysu(str(tmp_path_factory.mktemp('sysu_root')))


# ---------------------------------------------------------------------- #
# Selection
# ---------------------------------------------------------------------- #
def test_query_matches_reference(sysu_root):
    ref = ref_query(sysu_root)
    for mode in ('all', 'indoor'):  # the query does not depend on it
        items = SYSUMM01Dataset(
            sysu_root, split='query', search_mode=mode).get_data_list()
        assert rel(items, sysu_root) == rel_ref(ref, sysu_root)
        assert [(d['cam_id'], d['gt_label']) for d in items] == \
            [ref_tags(p) for p in ref]
        assert {d['modality'] for d in items} == {'ir'}
    # The duplicated id 14 is listed twice, as in the reference.
    pids = [d['gt_label'] for d in items]
    n14 = pids.count(14)
    assert n14 > 0 and n14 % 2 == 0


@pytest.mark.parametrize('mode', ['all', 'indoor'])
def test_single_shot_gallery_matches_reference(sysu_root, mode):
    state = random.getstate()
    galleries = set()
    for trial in range(10):
        items = SYSUMM01Dataset(
            sysu_root, split='gallery', search_mode=mode,
            trial=trial).get_data_list()
        # Our dataset must not touch the global random state.
        assert random.getstate() == state
        ref = ref_gallery(sysu_root, mode, trial)
        random.setstate(state)
        assert rel(items, sysu_root) == rel_ref(ref, sysu_root)
        assert [(d['cam_id'], d['gt_label']) for d in items] == \
            [ref_tags(p) for p in ref]
        cams = {d['cam_id'] for d in items}
        assert cams <= ({1, 2, 4, 5} if mode == 'all' else {1, 2})
        galleries.add(tuple(rel(items, sysu_root)))
    assert len(galleries) > 5  # the trials really draw different files


def test_multi_shot_gallery(tmp_path):
    root = make_sysu(
        str(tmp_path / 'multi'), seed=3, min_files=10, max_files=13)
    state = np.random.get_state()
    for trial in (0, 4):
        items = SYSUMM01Dataset(
            root, split='gallery', gallery_mode='multi',
            trial=trial).get_data_list()
        ref = ref_gallery_multi(root, 'all', trial)
        assert rel(items, root) == rel_ref(ref, root)
        # 10 distinct files per (id, camera) folder visit.
        assert len(items) % 10 == 0
        for start in range(0, len(items), 10):
            block = items[start:start + 10]
            assert len({d['img_path'] for d in block}) == 10
            assert len({(d['gt_label'], d['cam_id']) for d in block}) == 1
    np.random.set_state(state)


def test_multi_shot_needs_ten_files(sysu_root):
    ds = SYSUMM01Dataset(
        sysu_root, split='gallery', gallery_mode='multi', lazy_init=True)
    with pytest.raises(
            ValueError,
            match=r'cam\d/\d{4}" holds \d file\(s\), '
            r'fewer than the 10'):
        ds.full_init()


@pytest.mark.parametrize('mode', ['all', 'indoor'])
def test_test_split_lists_every_candidate(sysu_root, mode):
    ds = SYSUMM01Dataset(sysu_root, split='test', search_mode=mode)
    items = ds.get_data_list()
    query = ref_query(sysu_root)
    cams = ['cam1', 'cam2', 'cam4', 'cam5'] if mode == 'all' \
        else ['cam1', 'cam2']
    cand = [
        p for files in ref_walk(sysu_root, cams,
                                ref_ids(sysu_root, ['test_id.txt']))
        for p in files
    ]
    assert rel(items, sysu_root) == rel_ref(query + cand, sysu_root)
    mods = ds.get_modalities()
    assert (mods[:len(query)] == 'ir').all()
    assert (mods[len(query):] == 'vis').all()
    # The metric's path: group the candidates, draw a trial; it must give
    # the gallery split of the same trial.
    gal = items[len(query):]
    groups = group_consecutive([(d['gt_label'], d['cam_id']) for d in gal],
                               [d['img_path'] for d in gal])
    for trial in (0, 7):
        picks = [gal[i]['img_path'] for i in draw_single_shot(groups, trial)]
        expected = SYSUMM01Dataset(
            sysu_root, split='gallery', search_mode=mode,
            trial=trial).get_data_list()
        assert picks == [d['img_path'] for d in expected]


def test_train_matches_pre_process_sysu(sysu_root):
    ds = SYSUMM01Dataset(sysu_root, split='train')
    items = ds.get_data_list()
    rgb, rgb_labels, ir, ir_labels = ref_train(sysu_root)
    assert rel(items, sysu_root) == rel_ref(rgb + ir, sysu_root)
    assert [d['gt_label'] for d in items] == rgb_labels + ir_labels
    assert [d['modality'] for d in items] == ['vis'] * len(rgb) + \
        ['ir'] * len(ir)
    assert [d['cam_id'] for d in items] == [ref_tags(p)[0] for p in rgb + ir]
    num_ids = len(TRAIN_IDS + VAL_IDS)
    assert ds.metainfo['num_classes'] == ds.num_classes == num_ids
    assert sorted(set(ds.get_labels())) == list(range(num_ids))
    # Labels follow ascending pid: pid 1 -> 0, pid 20 -> last.
    assert items[0]['gt_label'] == 0 and 'cam' in items[0]['img_path']
    assert osp.relpath(items[0]['img_path'],
                       sysu_root).split(os.sep)[1] == '0001'


def test_rgb_id_without_ir_is_an_error(tmp_path):
    root = make_sysu(str(tmp_path / 'noir'), seed=1, ir_less=(7, ))
    with pytest.raises(
            ValueError,
            match='Person id 7 has visible training '
            'images but no infrared one'):
        SYSUMM01Dataset(root, split='train')


def test_tags_from_folders_for_any_name(tmp_path):
    root = make_sysu(str(tmp_path / 'names'), seed=2)
    folder = osp.join(root, 'cam3', '0008')
    # A 9-character name: the reference's fixed offsets read '/' as the
    # camera digit and crash; the folder tags stay right.
    _touch(osp.join(folder, '12345.jpg'))
    items = SYSUMM01Dataset(root, split='query').get_data_list()
    odd = [d for d in items if d['img_path'].endswith('12345.jpg')]
    assert len(odd) == 1 and (odd[0]['cam_id'], odd[0]['gt_label']) == (3, 8)
    with pytest.raises(ValueError):
        ref_tags(odd[0]['img_path'])


def test_trailing_slash_root_gives_same_files(sysu_root):
    a = SYSUMM01Dataset(sysu_root, split='gallery', trial=2).get_data_list()
    b = SYSUMM01Dataset(
        sysu_root + '/', split='gallery', trial=2).get_data_list()
    assert rel(a, sysu_root) == rel(b, sysu_root)


# ---------------------------------------------------------------------- #
# Errors on broken layouts
# ---------------------------------------------------------------------- #
def test_missing_root_shows_layout(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as err:
        SYSUMM01Dataset(missing, split='query')
    msg = str(err.value)
    assert f'the data_root folder "{missing}" does not exist' in msg
    assert 'exp/' in msg and 'test_id.txt' in msg and 'cam3/ cam6/' in msg


def test_missing_id_file_and_camera(tmp_path):
    root = make_sysu(str(tmp_path / 'broken'), seed=4)
    os.remove(osp.join(root, 'exp', 'val_id.txt'))
    with pytest.raises(
            FileNotFoundError,
            match=r'identity list file ".*exp/val_id.txt" does '
            'not exist'):
        SYSUMM01Dataset(root, split='train')
    import shutil
    shutil.rmtree(osp.join(root, 'cam6'))
    with pytest.raises(
            FileNotFoundError,
            match=r'camera 6 folder ".*cam6" does not exist'):
        SYSUMM01Dataset(root, split='query')


def test_bad_id_file_and_arguments(tmp_path):
    root = make_sysu(str(tmp_path / 'badids'), seed=5)
    with open(osp.join(root, 'exp', 'test_id.txt'), 'w') as f:
        f.write('1,2,x3\n')
    with pytest.raises(
            ValueError, match='holds "x3", which is not an '
            'integer person id'):
        SYSUMM01Dataset(root, split='query')
    with pytest.raises(ValueError, match='split must be one of'):
        SYSUMM01Dataset(root, split='val')
    with pytest.raises(ValueError, match='search_mode must be'):
        SYSUMM01Dataset(root, split='query', search_mode='outdoor')
    with pytest.raises(ValueError, match='gallery_mode must be'):
        SYSUMM01Dataset(root, split='gallery', gallery_mode='few')


def test_no_image_at_all_is_an_error(tmp_path):
    root = str(tmp_path / 'empty')
    for cam in range(1, 7):
        os.makedirs(osp.join(root, f'cam{cam}'))
    os.makedirs(osp.join(root, 'exp'))
    for name in ('train_id.txt', 'val_id.txt'):
        with open(osp.join(root, 'exp', name), 'w') as f:
            f.write('1,2\n')
    with pytest.raises(
            FileNotFoundError, match='no image found for split '
            '"train"'):
        SYSUMM01Dataset(root, split='train')
    # test ids without images are named (test_split_sanity.py)
    with open(osp.join(root, 'exp', 'test_id.txt'), 'w') as f:
        f.write('3,4\n')
    with pytest.raises(
            ValueError,
            match=r'2 test ids \(0003, 0004\) listed in .* have '
            'no image of either modality'):
        SYSUMM01Dataset(root, split='query')


# ---------------------------------------------------------------------- #
# MMEngine integration
# ---------------------------------------------------------------------- #
def test_lazy_init_subset_and_registry(sysu_root):
    ds = SYSUMM01Dataset(
        osp.join(sysu_root, 'missing'), split='train', lazy_init=True)
    assert not ds._fully_initialized  # nothing read yet
    with pytest.raises(FileNotFoundError):
        ds.full_init()

    ds = DATASETS.build(
        dict(
            type='SYSUMM01Dataset',
            data_root=sysu_root,
            split='train',
            lazy_init=True,
            pipeline=[lambda r: dict(r, seen=True)]))
    full = SYSUMM01Dataset(sysu_root, split='train', serialize_data=False)
    assert ds.num_classes == full.num_classes  # loads on demand
    labels, mods = full.get_labels(), full.get_modalities()
    assert len(ds) == len(labels)
    np.testing.assert_array_equal(ds.get_labels(), labels)
    out = ds[len(ds) - 1]
    assert out['seen'] and out['modality'] == 'ir'
    assert ds.metainfo['search_mode'] == 'all' and not full.test_mode

    keep = [len(labels) - 1, 0, 3]
    for sub in (ds.get_subset(keep), full.get_subset(keep)):
        np.testing.assert_array_equal(sub.get_labels(), labels[keep])
        np.testing.assert_array_equal(sub.get_modalities(), mods[keep])
        assert [d['gt_label'] for d in sub.get_data_list()] == \
            list(labels[keep])
    ds.get_subset_(-4)
    np.testing.assert_array_equal(ds.get_labels(), labels[-4:])
    np.testing.assert_array_equal(ds.get_cam_ids(), full.get_cam_ids()[-4:])
    assert ds.get_cat_ids(0) == [int(labels[-4])]


def test_subset_copy_ignores_mmengine_stale_memo(sysu_root):
    """MMEngine's ``_copy_without_annotation(memo=dict())`` shares one memo
    across calls; an entry left for a collected object whose id is reused
    by one of our transforms would replace it in the subset. Poison that
    shared memo with the transform's id: our subsets copy it anyway."""
    from mmengine.dataset import BaseDataset

    def tag(results):
        return dict(results, tagged=True)

    ds = SYSUMM01Dataset(sysu_root, split='train', pipeline=[tag])
    transform = ds.pipeline.transforms[0]
    shared_memo = BaseDataset._copy_without_annotation.__defaults__[0]
    shared_memo[id(transform)] = 'a stale copy of a collected object'
    try:
        sub = ds.get_subset([0, 1])
        assert callable(sub.pipeline.transforms[0])
        assert sub[0]['tagged'] is True
    finally:
        shared_memo.pop(id(transform), None)
