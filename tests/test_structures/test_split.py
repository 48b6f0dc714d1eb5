# Copyright (c) mmvireid contributors. All rights reserved.
"""The query and gallery of every direction and trial."""
import random

import numpy as np
import pytest

from mmvireid.structures import ProtocolSplit, protocol_split

# gallery walk: (pid, cam) folders 1/1 (3 files), 1/2 (2), 2/1 (4), then two
# infrared images
PIDS = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 9, 9])
CAMS = np.array([1, 1, 1, 2, 2, 1, 1, 1, 1, 3, 6])
MODS = np.array(['vis'] * 9 + ['ir'] * 2)
PATHS = [f'f{i}' for i in range(11)]
FOLDERS = ([0, 1, 2], [3, 4], [5, 6, 7, 8])


def reference_single_shot(trial):
    """random.seed(trial), then one random.choice per folder over its
    sorted files."""
    random.seed(trial)
    return [random.choice(folder) for folder in FOLDERS]


def test_protocol_split_draws_like_the_reference():
    for trial in range(4):
        q, g = protocol_split(PIDS, CAMS, MODS, PATHS, 'sysu', 'ir2vis', trial)
        assert q.tolist() == [9, 10]
        assert g.tolist() == reference_single_shot(trial)
    q, g = protocol_split(PIDS, CAMS, MODS, PATHS, 'regdb', 'vis2ir')
    assert q.tolist() == list(range(9)) and g.tolist() == [9, 10]
    with pytest.raises(ValueError, match='0 \'ir\''):
        protocol_split(PIDS[:9], CAMS[:9], MODS[:9], PATHS[:9], 'sysu')


def test_llcm_directions_and_the_deen_reading():
    # the same walk seen as LLCM: visible folders, infrared folders
    pids = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2])
    cams = np.array([1, 1, 1, 2, 2, 1, 1, 1, 1, 4, 4, 4])
    mods = np.array(['vis'] * 9 + ['ir'] * 3)
    for trial in range(3):
        symmetric = ProtocolSplit('llcm', pids, cams, mods)
        q, g = symmetric('ir2vis', trial)
        assert q.tolist() == [9, 10, 11]
        assert g.tolist() == reference_single_shot(trial)
        q, g = symmetric('vis2ir', trial)
        random.seed(trial)
        expect = [random.choice([9, 10]), 11]
        assert q.tolist() == list(range(9)) and g.tolist() == expect
        # DEEN: the drawn infrared images are the rows, against every
        # visible image
        q, g = ProtocolSplit(
            'llcm', pids, cams, mods, llcm_vis2ir_mode='deen')('vis2ir', trial)
        assert q.tolist() == expect and g.tolist() == list(range(9))


def test_multi_shot_and_back_to_back_visits():
    # one folder of 12 files visited twice (a duplicated test id): the
    # paths tell the visits apart, the keys alone cannot
    pids = np.array([4] * 24 + [4])
    cams = np.array([1] * 24 + [3])
    mods = np.array(['vis'] * 24 + ['ir'])
    paths = [f'cam1/0004/{i % 12:04d}.jpg' for i in range(24)] + ['q.jpg']
    split = ProtocolSplit('sysu', pids, cams, mods, paths, 'multi')
    q, g = split('ir2vis', 5)
    rs = np.random.RandomState(5)
    expect = [int(i) for i in rs.choice(np.arange(12), 10, replace=False)]
    expect += [int(i) for i in rs.choice(np.arange(12, 24), 10, replace=False)]
    assert q.tolist() == [24] and g.tolist() == expect
    # without paths the 24 candidates are one visit
    q, g = ProtocolSplit('sysu', pids, cams, mods, None, 'multi')('ir2vis')
    assert len(g) == 10
    small = ProtocolSplit('sysu', np.array([4] * 3 + [4]),
                          np.array([1] * 3 + [3]),
                          np.array(['vis'] * 3 + ['ir']), None, 'multi')
    with pytest.raises(
            ValueError,
            match=r"multi-shot gallery draw failed "
            r"for the 'vis' candidates: draw_multi_shot: group 0"):
        small('ir2vis')


def test_split_refuses_what_the_protocol_does_not_define():
    split = ProtocolSplit('sysu', PIDS, CAMS, MODS, PATHS)
    with pytest.raises(ValueError, match="protocol='sysu' has IR queries"):
        split('vis2ir')
    with pytest.raises(ValueError, match="gallery_mode='multi' exists only"):
        ProtocolSplit('regdb', PIDS, CAMS, MODS, gallery_mode='multi')
