# Copyright (c) mmvireid contributors. All rights reserved.
"""prepare_sysu.py, check_regdb.py, check_llcm.py on toy datasets."""
import importlib.util
import os
import os.path as osp
import re
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTERS = osp.join(REPO_ROOT, 'tools', 'dataset_converters')


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(CONVERTERS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_sysu = _load('prepare_sysu')
check_regdb = _load('check_regdb')
check_llcm = _load('check_llcm')


def _make(layout, root, **kwargs):
    sys.path.insert(0, CONVERTERS)
    try:
        from make_toy_vireid import make_toy_dataset
    finally:
        sys.path.pop(0)
    make_toy_dataset(layout, str(root), seed=1, verbose=False, **kwargs)
    return str(root)


@pytest.fixture(scope='module')
def small_sysu(tmp_path_factory):
    return _make(
        'sysu',
        tmp_path_factory.mktemp('c') / 'sysu',
        num_ids=8,
        imgs_per_cam=2)


def _first_line_ids(path):
    return sorted('%04d' % int(t)
                  for t in open(path).read().splitlines()[0].split(',')
                  if t.strip())


def reference_sysu_cache(root):
    """pre_process_sysu.py's listing, labels and resizing, re-written."""
    ids = _first_line_ids(osp.join(root, 'exp', 'train_id.txt')) + \
        _first_line_ids(osp.join(root, 'exp', 'val_id.txt'))
    files = dict(vis=[], ir=[])
    for pid in sorted(ids):
        for mod, cams in (('vis', ('cam1', 'cam2', 'cam4', 'cam5')),
                          ('ir', ('cam3', 'cam6'))):
            for cam in cams:
                folder = osp.join(root, cam, pid)
                if osp.isdir(folder):
                    files[mod] += sorted(folder + '/' + f
                                         for f in os.listdir(folder))
    pid2label = {
        pid: label
        for label, pid in enumerate(
            sorted({int(p[-13:-9])
                    for p in files['ir']}))
    }
    out = {}
    for mod, paths in files.items():
        imgs = [
            np.array(Image.open(p).resize((144, 288), Image.LANCZOS))
            for p in paths
        ]
        out[mod] = (np.array(imgs),
                    np.array([pid2label[int(p[-13:-9])] for p in paths]))
    return out, len(set(ids))


def test_prepare_sysu_counts_and_npy_cache(small_sysu, tmp_path, capsys):
    out_dir = tmp_path / 'npy'
    assert prepare_sysu.main([small_sysu, '--npy', '--out-dir',
                              str(out_dir)]) == 0
    printed = capsys.readouterr().out
    ref, num_train_ids = reference_sysu_cache(small_sysu)
    n_vis, n_ir = len(ref['vis'][1]), len(ref['ir'][1])
    assert (f'train    : {num_train_ids} ids; visible {n_vis} images'
            in printed)
    assert f'infrared {n_ir} images' in printed
    assert 'not compared with the official statistics' in printed
    for mod, (img_name, label_name) in prepare_sysu.NPY_NAMES.items():
        imgs = np.load(out_dir / img_name)
        labels = np.load(out_dir / label_name)
        assert imgs.dtype == np.uint8 and imgs.shape[1:] == (288, 144, 3)
        np.testing.assert_array_equal(imgs, ref[mod][0])
        np.testing.assert_array_equal(labels, ref[mod][1])
    # the cache is never overwritten silently
    assert prepare_sysu.main([small_sysu, '--npy', '--out-dir',
                              str(out_dir)]) == 1
    assert '--overwrite' in capsys.readouterr().err


def test_prepare_sysu_query_and_gallery_counts(small_sysu):
    stats = prepare_sysu.collect_stats(small_sysu)
    test_ids = _first_line_ids(osp.join(small_sysu, 'exp', 'test_id.txt'))
    n_query, folders = 0, dict(all=0, indoor=0)
    for pid in test_ids:
        for cam in (3, 6):
            folder = osp.join(small_sysu, f'cam{cam}', pid)
            n_query += len(os.listdir(folder)) if osp.isdir(folder) else 0
        for mode, cams in (('all', (1, 2, 4, 5)), ('indoor', (1, 2))):
            folders[mode] += sum(
                osp.isdir(osp.join(small_sysu, f'cam{c}', pid)) for c in cams)
    assert stats['query']['images'] == n_query
    assert stats['gallery_all']['folders'] == folders['all']
    assert stats['gallery_indoor']['folders'] == folders['indoor']
    mismatches = prepare_sysu.official_mismatches(stats)
    assert any(
        m.startswith('train_ids: ') and m.endswith('release: 395)')
        for m in mismatches)


def test_prepare_sysu_reports_everything_missing(small_sysu, tmp_path, capsys):
    broken = tmp_path / 'broken'
    shutil.copytree(small_sysu, broken)
    shutil.rmtree(broken / 'cam2')
    os.remove(broken / 'exp' / 'val_id.txt')
    assert prepare_sysu.main([str(broken)]) == 1
    out = capsys.readouterr().out
    assert f'  - {broken}/cam2/' in out
    assert f'  - {broken}/exp/val_id.txt' in out
    assert 'cam1/' not in out.split('Expected layout')[0]
    assert 'Expected layout:' in out and 'test_id.txt' in out


def test_check_regdb(tmp_path, capsys):
    root = _make('regdb', tmp_path / 'regdb', num_ids=6, imgs_per_cam=2)
    assert check_regdb.main([root, '--trials', '1', '3']) == 0
    out = capsys.readouterr().out
    for trial in (1, 3):
        counts = []
        for split in ('train', 'test'):
            for name in ('visible', 'thermal'):
                lines = open(
                    osp.join(root, 'idx',
                             f'{split}_{name}_{trial}.txt')).read().split()
                counts.append(len(lines) // 2)
        line = [
            ln for ln in out.splitlines()
            if ln.startswith(f'split {trial:>2}:')
        ][0]
        for n in counts:
            assert f' {n} (' in line
    # a listed image that is gone, and a missing index file
    first = open(osp.join(root, 'idx',
                          'train_visible_1.txt')).readline().split()[0]
    os.remove(osp.join(root, first))
    assert check_regdb.main([root, '--trials', '1']) == 1
    captured = capsys.readouterr()
    assert f'missing image: {osp.join(root, first)}' in captured.out
    assert '1 listed image(s) do not exist' in captured.err
    os.remove(osp.join(root, 'idx', 'test_thermal_2.txt'))
    assert check_regdb.main([root]) == 1
    out = capsys.readouterr().out
    assert 'test_thermal_2.txt' in out and 'Expected layout' in out
    assert check_regdb.main([root, '--trials', '11']) == 1


def test_check_llcm(tmp_path, capsys):
    root = _make('llcm', tmp_path / 'llcm', num_ids=8, imgs_per_cam=1)
    assert check_llcm.main([root]) == 0
    out = capsys.readouterr().out
    n_vis = len(open(osp.join(root, 'idx', 'train_vis.txt')).readlines())
    n_nir = len(open(osp.join(root, 'idx', 'train_nir.txt')).readlines())
    assert f'train : visible {n_vis} images' in out
    assert f'near-infrared {n_nir} images' in out
    n_test_vis = sum(
        len(fs) for _, _, fs in os.walk(osp.join(root, 'test_vis')))
    assert f'test  : visible {n_test_vis} images' in out
    stats = check_llcm.collect_stats(root)
    # ir2vis queries are every NIR test image
    n_test_nir = sum(
        len(fs) for _, _, fs in os.walk(osp.join(root, 'test_nir')))
    assert stats['ir2vis']['query'] == n_test_nir
    shutil.rmtree(osp.join(root, 'test_nir'))
    os.remove(osp.join(root, 'idx', 'test_id.txt'))
    assert check_llcm.main([root]) == 1
    out = capsys.readouterr().out
    assert 'test_nir/' in out and 'idx/test_id.txt' in out
    assert 'Expected layout' in out


# ---------------------------------------------------------------------- #
# Split sanity and --decode (issue 16, item 3)
# ---------------------------------------------------------------------- #
CHECKERS = dict(sysu=prepare_sysu, regdb=check_regdb, llcm=check_llcm)


@pytest.fixture(scope='module')
def small_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp('sanity')
    return {
        layout: _make(layout, base / layout, num_ids=8, imgs_per_cam=1)
        for layout in CHECKERS
    }


def _copy(small_sets, layout, tmp_path):
    root = str(tmp_path / layout)
    shutil.copytree(small_sets[layout], root)
    return root


def _run(layout, root, *args):
    argv = [root, *args] + (['--trials', '1'] if layout == 'regdb' else [])
    return CHECKERS[layout].main(argv)


def _images(root):
    return sorted(
        osp.join(d, f) for d, _, files in os.walk(root) for f in files
        if f.endswith('.jpg'))


@pytest.mark.parametrize('layout', list(CHECKERS))
def test_checkers_ignore_hidden_files(small_sets, layout, tmp_path, capsys):
    root = _copy(small_sets, layout, tmp_path)
    assert _run(layout, root) == 0
    before = capsys.readouterr().out
    # Finder and macOS copies leave these next to the images.
    for folder in {osp.dirname(p) for p in _images(root)}:
        for name in ('.DS_Store', '._0001.jpg'):
            with open(osp.join(folder, name), 'wb') as f:
                f.write(b'\x00\x05\x16\x07')
    assert _run(layout, root, '--decode') == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(before)  # the same counts
    assert 'undecodable' not in captured.out
    assert re.search(r'decoded all \d+ images', captured.out)
    assert 'decoding' in captured.err  # the progress bar


@pytest.mark.parametrize('layout', list(CHECKERS))
def test_checkers_decode_every_image(small_sets, layout, tmp_path, capsys):
    root = _copy(small_sets, layout, tmp_path)
    listed = [p for p in _images(root) if 'train' in p or 'test' in p] \
        if layout == 'llcm' else _images(root)
    truncated, empty = listed[0], listed[-1]
    with open(truncated, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 3])
    open(empty, 'wb').close()
    # without --decode, the files are only listed
    assert _run(layout, root) == 0
    capsys.readouterr()
    assert _run(layout, root, '--decode') == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert f'  undecodable image: {empty} (the file is empty)' in lines
    assert any(
        ln.startswith(f'  undecodable image: {truncated} (OSError: ')
        for ln in lines)
    assert re.search(
        r'ERROR: 2 of \d+ image\(s\) cannot be decoded \(listed above\); '
        r'replace them with good copies \(re-extract the dataset\)',
        captured.err)


def test_checkers_report_train_test_overlap(small_sets, tmp_path, capsys):
    # SYSU: a training id listed for testing
    root = _copy(small_sets, 'sysu', tmp_path)
    exp = osp.join(root, 'exp')
    train = _first_line_ids(osp.join(exp, 'train_id.txt'))
    test = _first_line_ids(osp.join(exp, 'test_id.txt'))
    with open(osp.join(exp, 'test_id.txt'), 'w') as f:
        f.write(','.join(test + train[:1]) + '\n')
    assert prepare_sysu.main([root]) == 1
    assert (f'ERROR: SYSUMM01Dataset: the training and test identities '
            f'overlap: 1 id ({train[0]}) of "{exp}/train_id.txt" is also in '
            f'"{exp}/test_id.txt".') in capsys.readouterr().err
    # RegDB: a training image listed by a test file
    root = _copy(small_sets, 'regdb', tmp_path)
    idx = osp.join(root, 'idx')
    with open(osp.join(idx, 'train_visible_1.txt')) as f:
        line = f.readline()
    with open(osp.join(idx, 'test_visible_1.txt'), 'a') as f:
        f.write(line)
    assert check_regdb.main([root, '--trials', '1']) == 1
    assert ('ERROR: RegDBDataset: the training and test identities overlap: '
            f'1 id ({line.split("/")[1]}) of the person folders of '
            f'"{idx}/train_visible_1.txt"') in capsys.readouterr().err
    # LLCM: a training person folder that is a test id
    root = _copy(small_sets, 'llcm', tmp_path)
    idx = osp.join(root, 'idx')
    pid = _first_line_ids(osp.join(idx, 'test_id.txt'))[0]
    with open(osp.join(idx, 'train_nir.txt')) as f:
        label = f.readline().split()[1]
    with open(osp.join(idx, 'train_nir.txt'), 'a') as f:
        f.write(f'train_nir/cam2/{pid}/{pid}_c02_0001.jpg {label}\n')
    assert check_llcm.main([root]) == 1
    assert ('ERROR: LLCMDataset: the training and test identities overlap: '
            f'1 id ({pid}) of the person folders of "{idx}/train_nir.txt" '
            f'is also in "{idx}/test_id.txt".') in capsys.readouterr().err


def test_checkers_report_ids_without_images(small_sets, tmp_path, capsys):
    from mmvireid.datasets.split_checks import TEST_ID_HINT
    root = _copy(small_sets, 'sysu', tmp_path)
    exp = osp.join(root, 'exp')
    # a training id without images: a warning, printed once
    train = _first_line_ids(osp.join(exp, 'train_id.txt'))
    with open(osp.join(exp, 'train_id.txt'), 'w') as f:
        f.write(','.join(train + ['0099']) + '\n')
    assert prepare_sysu.main([root]) == 0
    out = capsys.readouterr().out
    warning = (f'warning: SYSUMM01Dataset: 1 training id (0099) listed in '
               f'"{exp}/train_id.txt" has no image in cam1..cam6 and will '
               'not be trained on (num_classes counts the ids with images).')
    assert out.count(warning) == 1
    assert 'WARNING' not in out  # not logged on top of the print
    # a test id without images, and an empty gallery folder: errors
    test = _first_line_ids(osp.join(exp, 'test_id.txt'))
    with open(osp.join(exp, 'test_id.txt'), 'w') as f:
        f.write(','.join(test + ['0098']) + '\n')
    folder = next(
        osp.join(root, f'cam{c}', pid) for pid in test for c in (1, 2, 4, 5)
        if osp.isdir(osp.join(root, f'cam{c}', pid)))
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    assert prepare_sysu.main([root]) == 1
    err = capsys.readouterr().err
    assert (f'ERROR: SYSUMM01Dataset: 1 test id (0098) listed in '
            f'"{exp}/test_id.txt" has no image of either modality (visible: '
            'cam1, cam2, cam4, cam5; infrared: cam3, cam6). '
            f'{TEST_ID_HINT}') in err
    assert ('SYSUMM01Dataset: 1 gallery folder of test ids holds no image '
            f'(hidden files do not count): "{folder}".') in err
    # LLCM: an empty test folder
    root = _copy(small_sets, 'llcm', tmp_path)
    folder = osp.dirname(_images(osp.join(root, 'test_vis'))[0])
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    assert check_llcm.main([root]) == 1
    assert (
        'ERROR: LLCMDataset: 1 test folder of test ids holds no image '
        f'(hidden files do not count): "{folder}".') in capsys.readouterr().err
