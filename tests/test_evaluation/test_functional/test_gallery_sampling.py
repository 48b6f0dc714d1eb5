# Copyright (c) mmvireid contributors. All rights reserved.
"""Per-trial gallery draws equal the reference's folder walk."""
import os
import os.path as osp
import random

import numpy as np
import pytest

from mmvireid.evaluation.functional import (draw_multi_shot, draw_single_shot,
                                            group_consecutive)


def make_tree(root, layout):
    """layout: {(pid, cam): number of files}; names are NNNN.jpg."""
    for (pid, cam), num in layout.items():
        folder = osp.join(root, f'cam{cam}', f'{pid:04d}')
        os.makedirs(folder)
        # Create in reverse so that listdir order is not already sorted.
        for i in reversed(range(num)):
            open(osp.join(folder, f'{i + 1:04d}.jpg'), 'w').close()


def reference_walk(root, ids, cams, trial, multi=False):
    """The reference gallery walk, reseeding the global generators."""
    random.seed(trial)
    picked = []
    for pid in sorted(f'{i:04d}' for i in ids):
        for cam in cams:
            folder = osp.join(root, f'cam{cam}', pid)
            if not osp.isdir(folder):
                continue
            files = sorted(os.listdir(folder))
            if multi:
                picked.extend(
                    osp.join(folder, f)
                    for f in np.random.choice(files, 10, replace=False))
            else:
                picked.append(osp.join(folder, random.choice(files)))
    return picked


def candidate_listing(root, ids, cams):
    """Every file of every folder, in walk order: the test dataset's list."""
    paths, keys = [], []
    for pid in sorted(f'{i:04d}' for i in ids):
        for cam in cams:
            folder = osp.join(root, f'cam{cam}', pid)
            if osp.isdir(folder):
                for name in sorted(os.listdir(folder)):
                    paths.append(osp.join(folder, name))
                    keys.append((int(pid), cam))
    return paths, keys


@pytest.fixture
def restore_global_rngs():
    py_state, np_state = random.getstate(), np.random.get_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def test_single_shot_equals_reference_walk(tmp_path, restore_global_rngs):
    rng = np.random.default_rng(0)
    ids = [3, 17, 105, 250, 1000, 42]
    cams = (1, 2, 4, 5)
    layout = {
        (pid, cam): int(rng.integers(1, 25))
        for pid in ids
        for cam in cams if rng.random() < 0.8
    }
    make_tree(str(tmp_path), layout)
    paths, keys = candidate_listing(str(tmp_path), ids, cams)
    groups = group_consecutive(keys)
    assert len(groups) == len(layout)
    for trial in range(10):
        expected = reference_walk(str(tmp_path), ids, cams, trial)
        # Our draw must neither read nor move the global random state.
        random.seed(12345)
        before = random.getstate()
        got = [paths[i] for i in draw_single_shot(groups, trial)]
        assert random.getstate() == before
        assert got == expected
    # numpy integers are accepted as trial numbers (Python 3.11's
    # random.seed refuses them).
    assert draw_single_shot(groups, np.int64(3)) == draw_single_shot(groups, 3)
    # Different trials really draw different galleries.
    assert draw_single_shot(groups, 0) != draw_single_shot(groups, 1)


def test_multi_shot_equals_seeded_reference_walk(tmp_path,
                                                 restore_global_rngs):
    ids = [1, 2, 3]
    cams = (1, 2)
    layout = {(1, 1): 10, (1, 2): 14, (2, 1): 23, (3, 2): 11}
    make_tree(str(tmp_path), layout)
    paths, keys = candidate_listing(str(tmp_path), ids, cams)
    groups = group_consecutive(keys)
    for trial in range(3):
        # The reference's numpy draws come from the global state; seeding
        # it with the trial is our documented multi-shot convention.
        np.random.seed(trial)
        expected = reference_walk(str(tmp_path), ids, cams, trial, multi=True)
        np.random.seed(999)
        before = np.random.get_state()[1].copy()
        picks = draw_multi_shot(groups, trial)
        np.testing.assert_array_equal(np.random.get_state()[1], before)
        assert [paths[i] for i in picks] == expected
        assert len(picks) == 10 * len(layout)
        for g, group in enumerate(groups):  # ten distinct per folder
            chunk = picks[10 * g:10 * g + 10]
            assert len(set(chunk)) == 10 and set(chunk) <= set(group)


def test_multi_shot_needs_ten_files_per_folder():
    groups = [list(range(10)), list(range(10, 19))]
    with pytest.raises(
            ValueError,
            match=r'draw_multi_shot: group 1 \(positions \[10, '
            r'11, 12, 13, 14\]\.\.\.\) holds 9 candidates, fewer '
            r'than the 10'):
        draw_multi_shot(groups, 0)
    assert len(draw_multi_shot(groups, 0, num=9)) == 18
    with pytest.raises(ValueError, match='num must be >= 1'):
        draw_multi_shot(groups, 0, num=0)


def test_group_consecutive_rules():
    keys = [(1, 1), (1, 1), (1, 2), (2, 1), (2, 1), (1, 1)]
    # A key seen again later (a duplicated test id) starts a new group.
    assert group_consecutive(keys) == [[0, 1], [2], [3, 4], [5]]
    assert group_consecutive([]) == []
    # A duplicated id with a single folder is listed twice back to back:
    # keys alone merge the two visits, the repeated paths split them.
    keys = [(7, 1)] * 6
    paths = ['a', 'b', 'c', 'a', 'b', 'c']
    assert group_consecutive(keys) == [list(range(6))]
    assert group_consecutive(keys, paths) == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(
            ValueError, match='`items` has 2 entries but `keys` '
            'has 6'):
        group_consecutive(keys, ['a', 'b'])


def test_duplicated_id_walk_matches_reference(restore_global_rngs):
    # The reference keeps duplicated test ids and walks their folders
    # twice; the candidate listing then repeats the files, and grouping by
    # (key, repeated path) reproduces the two draws.
    files = [f'{i:04d}.jpg' for i in range(1, 8)]
    walk = [files, files, files[:3]]  # id 5 twice (cam 1), then id 6
    random.seed(4)
    expected = [random.choice(f) for f in walk]
    paths = files + files + files[:3]
    keys = [(5, 1)] * 14 + [(6, 1)] * 3
    groups = group_consecutive(keys, paths)
    assert [len(g) for g in groups] == [7, 7, 3]
    assert [paths[i] for i in draw_single_shot(groups, 4)] == expected


def test_empty_group_is_an_error():
    with pytest.raises(
            ValueError, match='draw_single_shot: group 1 is '
            'empty'):
        draw_single_shot([[0], []], 0)
    with pytest.raises(TypeError):
        draw_single_shot([[0]], 1.5)  # a float would seed another stream
