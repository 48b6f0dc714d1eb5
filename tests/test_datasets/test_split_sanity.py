# Copyright (c) mmvireid contributors. All rights reserved.
"""Split sanity of the datasets (issue 16, item 3).

A train/test identity overlap is an error naming the ids and the files;
hidden files are not images; listed test ids without images and empty
gallery folders are errors, training ids without images warnings. The
exact messages are listed in ``docs/en/advanced_guides/troubleshooting.md``.
"""
import importlib.util
import os
import os.path as osp
import shutil
import sys

import pytest
from toy_utils import REPO_ROOT, make_toy_dataset

from mmvireid.datasets import LLCMDataset, RegDBDataset, SYSUMM01Dataset
from mmvireid.datasets.split_checks import (TEST_ID_HINT, SplitError,
                                            decode_image, format_ids)
from mmvireid.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp('split_sanity')
    return {
        layout:
        make_toy_dataset(layout, base / layout, num_ids=8, imgs_per_cam=2)
        for layout in ('sysu', 'regdb', 'llcm')
    }


@pytest.fixture
def copy_of(pristine, tmp_path):
    """A fresh copy of a toy dataset, which the test may break."""

    def make(layout):
        root = str(tmp_path / layout)
        shutil.copytree(pristine[layout], root)
        return root

    return make


def _first_line(path):
    with open(path) as f:
        return [int(t) for t in f.readline().strip().split(',') if t]


def _write_ids(path, ids):
    with open(path, 'w') as f:
        f.write(','.join(map(str, ids)) + '\n')


def _listing(dataset_cls, root, **kwargs):
    return [(d['img_path'], d['gt_label'])
            for d in dataset_cls(root, **kwargs).get_data_list()]


# ---------------------------------------------------------------- overlap
@pytest.mark.parametrize('split', ['train', 'query', 'gallery', 'test'])
def test_sysu_overlap_is_an_error(copy_of, split):
    root = copy_of('sysu')
    exp = osp.join(root, 'exp')
    train = _first_line(osp.join(exp, 'train_id.txt'))
    val = _first_line(osp.join(exp, 'val_id.txt'))
    test = _first_line(osp.join(exp, 'test_id.txt'))
    # Two training ids and the validation id are listed for testing too;
    # their images are where the test split looks, so the overlap is the
    # only problem.
    _write_ids(osp.join(exp, 'test_id.txt'), test + train[:2] + val)
    with pytest.raises(SplitError) as err:
        SYSUMM01Dataset(root, split=split)
    shared = ', '.join('%04d' % i for i in sorted(train[:2]))
    assert str(err.value) == (
        'SYSUMM01Dataset: the training and test identities overlap: '
        f'2 ids ({shared}) of "{exp}/train_id.txt" are also in '
        f'"{exp}/test_id.txt"; 1 id ({val[0]:04d}) of "{exp}/val_id.txt" is '
        f'also in "{exp}/test_id.txt". The test would score people the '
        'model was trained on; remove these ids from the training or the '
        'test list (the official splits share no identity).')


def test_overlap_message_shows_the_first_ten_and_the_count():
    assert format_ids([
        '%04d' % i for i in range(1, 14)
    ]) == ('13 ids (the first 10: 0001, 0002, 0003, 0004, 0005, 0006, 0007, '
           '0008, 0009, 0010)')
    assert format_ids(['0003'], 'test id') == '1 test id (0003)'


@pytest.mark.parametrize('split', ['train', 'test'])
def test_regdb_overlap_is_an_error(copy_of, split):
    root = copy_of('regdb')
    idx = osp.join(root, 'idx')
    with open(osp.join(idx, 'train_thermal_1.txt')) as f:
        line = f.readline()
    pid = int(line.split('/')[1])
    # A training image listed again by a test file, with a test label.
    with open(osp.join(idx, 'test_thermal_1.txt'), 'a') as f:
        f.write(line.split(' ')[0] + ' 99\n')
    with pytest.raises(SplitError) as err:
        RegDBDataset(root, split=split, trial=1)
    assert str(err.value) == (
        'RegDBDataset: the training and test identities overlap: '
        f'1 id ({pid}) of the person folders of "{idx}/train_visible_1.txt" '
        f'and "{idx}/train_thermal_1.txt" is also in the person folders of '
        f'"{idx}/test_visible_1.txt" and "{idx}/test_thermal_1.txt". The '
        'test would score people the model was trained on; remove these '
        'ids from the training or the test list (the official splits share '
        'no identity).')
    # other trials are not affected
    RegDBDataset(root, split=split, trial=2)


@pytest.mark.parametrize('split', ['train', 'query', 'test'])
def test_llcm_overlap_is_an_error(copy_of, split):
    root = copy_of('llcm')
    idx = osp.join(root, 'idx')
    test_ids = _first_line(osp.join(idx, 'test_id.txt'))
    with open(osp.join(idx, 'train_vis.txt')) as f:
        label = f.readline().split(' ')[1].strip()
    # A training line whose person folder is a test id.
    with open(osp.join(idx, 'train_vis.txt'), 'a') as f:
        f.write(f'train_vis/cam1/{test_ids[0]:04d}/x.jpg {label}\n')
    with pytest.raises(SplitError) as err:
        LLCMDataset(root, split=split)
    assert str(err.value) == (
        'LLCMDataset: the training and test identities overlap: '
        f'1 id ({test_ids[0]:04d}) of the person folders of '
        f'"{idx}/train_vis.txt" is also in "{idx}/test_id.txt". The test '
        'would score people the model was trained on; remove these ids '
        'from the training or the test list (the official splits share no '
        'identity).')


def test_damaged_list_of_the_other_split_does_not_block(copy_of):
    """The overlap check reads the other split's lists; a damaged one is
    reported when that split is built, not here."""
    root = copy_of('sysu')
    with open(osp.join(root, 'exp', 'test_id.txt'), 'w') as f:
        f.write('1,x\n')
    SYSUMM01Dataset(root, split='train')
    with pytest.raises(ValueError, match='holds "x"'):
        SYSUMM01Dataset(root, split='query')


# ------------------------------------------------------------ hidden files
HIDDEN = ('.DS_Store', '._0001.jpg', '.hidden.jpg')


def _add_hidden_files(root):
    """A hidden file in every leaf folder (as a Mac leaves them)."""
    count = 0
    for folder, dirs, files in os.walk(root):
        if not dirs and files:
            for name in HIDDEN:
                with open(osp.join(folder, name), 'wb') as f:
                    f.write(b'\x00\x05\x16\x07 not an image')
                count += 1
    return count


@pytest.mark.parametrize('layout,cls,splits', [
    ('sysu', SYSUMM01Dataset, ('train', 'query', 'gallery', 'test')),
    ('llcm', LLCMDataset, ('query', 'gallery', 'test')),
])
def test_hidden_files_are_not_images(copy_of, layout, cls, splits):
    root = copy_of(layout)
    before = {s: _listing(cls, root, split=s) for s in splits}
    assert _add_hidden_files(root) > 0
    for split in splits:
        assert _listing(cls, root, split=split) == before[split], split


def test_hidden_files_only_folder_is_an_empty_gallery_folder(copy_of):
    root = copy_of('sysu')
    test_ids = _first_line(osp.join(root, 'exp', 'test_id.txt'))
    folder = next(
        osp.join(root, f'cam{c}', f'{pid:04d}') for pid in test_ids
        for c in (1, 2, 4, 5)
        if osp.isdir(osp.join(root, f'cam{c}', f'{pid:04d}')))
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    open(osp.join(folder, '.DS_Store'), 'wb').close()
    with pytest.raises(
            SplitError, match='1 gallery folder of test ids holds no image'):
        SYSUMM01Dataset(root, split='test')


# -------------------------------------------------- ids without images
def test_sysu_test_id_without_images_is_an_error(copy_of):
    root = copy_of('sysu')
    id_file = osp.join(root, 'exp', 'test_id.txt')
    test_ids = _first_line(id_file)
    a, b = test_ids[:2]
    # a: no infrared image; b: no visible image; 97, 98: nothing at all
    for cam in (3, 6):
        shutil.rmtree(osp.join(root, f'cam{cam}', f'{a:04d}'), True)
    for cam in (1, 2, 4, 5):
        shutil.rmtree(osp.join(root, f'cam{cam}', f'{b:04d}'), True)
    _write_ids(id_file, test_ids + [97, 98])
    for split in ('query', 'gallery', 'test'):
        with pytest.raises(SplitError) as err:
            SYSUMM01Dataset(root, split=split)
        assert str(err.value) == '\n'.join([
            f'SYSUMM01Dataset: 2 test ids (0097, 0098) listed in "{id_file}" '
            'have no image of either modality (visible: cam1, cam2, cam4, '
            f'cam5; infrared: cam3, cam6). {TEST_ID_HINT}',
            f'SYSUMM01Dataset: 1 test id ({a:04d}) listed in "{id_file}" has '
            f'no infrared image (cam3, cam6). {TEST_ID_HINT}',
            f'SYSUMM01Dataset: 1 test id ({b:04d}) listed in "{id_file}" has '
            f'no visible image (cam1, cam2, cam4, cam5). {TEST_ID_HINT}',
        ])


def test_llcm_test_id_without_images_is_an_error(copy_of):
    root = copy_of('llcm')
    id_file = osp.join(root, 'idx', 'test_id.txt')
    test_ids = _first_line(id_file)
    pid = test_ids[0]
    for cam in range(1, 10):
        shutil.rmtree(
            osp.join(root, 'test_nir', f'cam{cam}', f'{pid:04d}'), True)
    _write_ids(id_file, test_ids + [99])
    with pytest.raises(SplitError) as err:
        LLCMDataset(root, split='gallery')
    assert str(err.value) == '\n'.join([
        f'LLCMDataset: 1 test id (0099) listed in "{id_file}" has no image '
        'of either modality (visible: test_vis/cam1..cam9; near-infrared: '
        f'test_nir/cam1, cam2, cam4..cam9). {TEST_ID_HINT}',
        f'LLCMDataset: 1 test id ({pid:04d}) listed in "{id_file}" has no '
        'near-infrared image (test_nir/cam1, cam2, cam4..cam9). '
        f'{TEST_ID_HINT}',
    ])


def test_sysu_training_id_without_images_is_a_warning(copy_of):
    root = copy_of('sysu')
    id_file = osp.join(root, 'exp', 'train_id.txt')
    ids = _first_line(id_file)
    expected = SYSUMM01Dataset(root, split='train')
    _write_ids(id_file, ids + [95])
    ds = SYSUMM01Dataset(root, split='train')
    assert ds.split_warnings == [
        f'SYSUMM01Dataset: 1 training id (0095) listed in "{id_file}" has '
        'no image in cam1..cam6 and will not be trained on (num_classes '
        'counts the ids with images).'
    ]
    assert ds.num_classes == expected.num_classes
    assert ds.get_data_list() == expected.get_data_list()


# --------------------------------------------------- empty gallery folders
def test_sysu_empty_gallery_folder_is_an_error(copy_of):
    root = copy_of('sysu')
    test_ids = _first_line(osp.join(root, 'exp', 'test_id.txt'))
    empty = [
        osp.join(root, 'cam1', f'{pid:04d}') for pid in test_ids[:2]
        if osp.isdir(osp.join(root, 'cam1', f'{pid:04d}'))
    ]
    # one more on an outdoor camera: not an indoor gallery folder
    assert empty
    outdoor = next(
        osp.join(root, 'cam4', f'{pid:04d}') for pid in test_ids
        if osp.isdir(osp.join(root, 'cam4', f'{pid:04d}')))
    for folder in empty + [outdoor]:
        shutil.rmtree(folder)
        os.makedirs(folder)
    # the ids keep visible images elsewhere (no other error)
    for pid in test_ids:
        os.makedirs(osp.join(root, 'cam5', f'{pid:04d}'), exist_ok=True)
        open(osp.join(root, 'cam5', f'{pid:04d}', '0001.jpg'), 'wb').close()
    for mode in ('all', 'indoor'):
        # in listing order: ids outer, cameras inner
        folders = sorted(
            empty + [outdoor] if mode == 'all' else empty,
            key=lambda f: (osp.basename(f), osp.dirname(f)))
        for split in ('query', 'gallery', 'test'):
            with pytest.raises(SplitError) as err:
                SYSUMM01Dataset(root, split=split, search_mode=mode)
            n = len(folders)
            shown = ', '.join(f'"{f}"' for f in folders)
            noun, verb = ('folder', 'holds') if n == 1 else ('folders', 'hold')
            assert str(err.value) == (
                f'SYSUMM01Dataset: {n} gallery {noun} of test ids {verb} no '
                f'image (hidden files do not count): {shown}. A single-shot '
                'gallery draws one image from every existing (id, camera) '
                'folder, and an empty folder has none (the reference fails '
                'on it); put its images back or delete the empty folder.')
    # deleting the empty folders is the fix
    for folder in empty + [outdoor]:
        os.rmdir(folder)
    SYSUMM01Dataset(root, split='test')


def test_llcm_empty_test_folder_is_an_error(copy_of):
    root = copy_of('llcm')
    test_ids = _first_line(osp.join(root, 'idx', 'test_id.txt'))
    folder = next(
        osp.join(root, 'test_nir', f'cam{c}', f'{pid:04d}') for pid in test_ids
        for c in (1, 2, 4, 5, 6, 7, 8, 9)
        if osp.isdir(osp.join(root, 'test_nir', f'cam{c}', f'{pid:04d}')))
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    for split in ('query', 'gallery', 'test'):
        with pytest.raises(
                SplitError,
                match='1 test folder of test ids '
                f'holds no image .*: "{folder}"'):
            LLCMDataset(root, split=split)


# ------------------------------------------------------------- the tools
def test_decode_image_reasons(tmp_path):
    from PIL import Image
    good = str(tmp_path / 'good.jpg')
    Image.new('RGB', (16, 32), (200, 10, 10)).save(good)
    with open(good, 'rb') as f:
        data = f.read()
    truncated = str(tmp_path / 'truncated.jpg')
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    empty = str(tmp_path / 'empty.jpg')
    open(empty, 'wb').close()
    assert decode_image(good) is None
    assert 'truncated' in decode_image(truncated).lower()
    assert decode_image(empty) == 'the file is empty'
    assert decode_image(str(tmp_path / 'gone.jpg')) == \
        'the file does not exist'


def test_train_tool_stops_on_overlap_before_writing(copy_of, tmp_path,
                                                    monkeypatch, capsys):
    """The tools' start-up check builds the datasets: the overlap stops
    tools/train.py with one ERROR line, before the work dir exists."""
    root = copy_of('sysu')
    exp = osp.join(root, 'exp')
    train = _first_line(osp.join(exp, 'train_id.txt'))
    test = _first_line(osp.join(exp, 'test_id.txt'))
    _write_ids(osp.join(exp, 'test_id.txt'), test + train[:1])
    spec = importlib.util.spec_from_file_location(
        '_split_sanity_train_tool', osp.join(REPO_ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    work_dir = str(tmp_path / 'work')
    monkeypatch.setattr(sys, 'argv', [
        'tools/train.py',
        osp.join(REPO_ROOT, 'configs',
                 'clip_vireid_toy.py'), '--work-dir', work_dir,
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}'
    ])
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(SystemExit) as exc:
        tool.main()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert (
        'ERROR: train_dataloader.dataset (SYSUMM01Dataset): SYSUMM01Dataset: '
        'the training and test identities overlap: 1 id '
        f'({train[0]:04d}) of "{exp}/train_id.txt" is also in '
        f'"{exp}/test_id.txt".') in err
    assert not osp.exists(work_dir)
