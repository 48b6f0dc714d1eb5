# Copyright (c) mmvireid contributors. All rights reserved.
"""The protocols' names, options and keep rule."""
import numpy as np
import pytest

from mmvireid.structures import (DATASET_PROTOCOLS, LLCM, PROTOCOL_DIRECTIONS,
                                 PROTOCOLS, REGDB, SYSU,
                                 check_protocol_options, protocol_drop_keys,
                                 protocol_keep_mask)


def reference_keep(protocol, q_pid, q_cam, g_pid, g_cam):
    """The rule written pair by pair, as the reference loops apply it."""
    keep = np.ones((len(q_pid), len(g_pid)), dtype=bool)
    for q in range(len(q_pid)):
        for g in range(len(g_pid)):
            if protocol == 'sysu':
                keep[q, g] = not (q_cam[q] == 3 and g_cam[g] == 2)
            elif protocol == 'llcm':
                keep[q,
                     g] = not (q_pid[q] == g_pid[g] and q_cam[q] == g_cam[g])
    return keep


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_keep_mask_equals_the_pairwise_rule(protocol):
    rng = np.random.default_rng(0)
    # pids and cameras that overlap partly between query and gallery, so
    # keys absent from the gallery occur too
    q_pid, q_cam = rng.integers(0, 9, 40), rng.integers(1, 8, 40)
    g_pid, g_cam = rng.integers(2, 12, 70), rng.integers(1, 7, 70)
    keep = protocol_keep_mask(protocol, q_pid, q_cam, g_pid, g_cam)
    expected = reference_keep(protocol, q_pid, q_cam, g_pid, g_cam)
    assert keep.dtype == bool and keep.shape == (40, 70)
    np.testing.assert_array_equal(keep, expected)
    if protocol != REGDB:
        assert not keep.all()  # the rule really drops something here


def test_drop_keys_are_dense():
    q_keys, g_keys, num = protocol_drop_keys(LLCM, [5, 5, 7], [1, 2, 1],
                                             [5, 7, 5, 9], [1, 1, 1, 3])
    # gallery pairs (5, 1), (7, 1), (9, 3): three keys
    assert num == 3
    assert g_keys.tolist() == [0, 1, 0, 2]
    assert q_keys.tolist() == [0, -1, 1]  # (5, 2) is not in the gallery
    q_keys, g_keys, num = protocol_drop_keys(SYSU, [None, None], [3, 6],
                                             [None, None], [2, 4])
    assert (q_keys.tolist(), g_keys.tolist(), num) == ([1, -1], [1, 0], 2)
    q_keys, g_keys, num = protocol_drop_keys(REGDB, [1], None, [1, 2], None)
    assert (q_keys.tolist(), g_keys.tolist(), num) == ([-1], [0, 0], 1)
    q_keys, g_keys, num = protocol_drop_keys(LLCM, [1], [1], [], [])
    assert (q_keys.tolist(), g_keys.tolist(), num) == ([-1], [], 1)


def test_keep_mask_needs_what_the_rule_reads():
    # SYSU reads cameras only; LLCM cameras and person ids
    assert protocol_keep_mask(SYSU, [None], [3], [None],
                              [2]).tolist() == [[False]]
    with pytest.raises(
            ValueError,
            match=r"the 'sysu' keep rule needs camera "
            r'ids for every image, but 1 image\(s\) have none '
            r'\(first at position 1\)'):
        protocol_keep_mask(SYSU, [1, 1], [3, None], [1], [2])
    with pytest.raises(ValueError, match='needs person ids for every image'):
        protocol_keep_mask(LLCM, [None], [3], [1], [2])
    with pytest.raises(ValueError, match='protocol must be one of'):
        protocol_keep_mask('market', [1], [1], [1], [1])


def test_protocol_tables():
    assert PROTOCOLS == ('sysu', 'regdb', 'llcm')
    assert set(PROTOCOL_DIRECTIONS) == set(PROTOCOLS)
    assert PROTOCOL_DIRECTIONS[SYSU] == ('ir2vis', )
    # the datasets' metainfo names
    from mmvireid.datasets import LLCMDataset, RegDBDataset, SYSUMM01Dataset
    assert {
        DATASET_PROTOCOLS[cls.METAINFO['dataset_name']]
        for cls in (SYSUMM01Dataset, RegDBDataset, LLCMDataset)
    } == set(PROTOCOLS)


def test_check_protocol_options():
    assert check_protocol_options(SYSU) == ('ir2vis', )
    assert check_protocol_options(REGDB) == ('vis2ir', 'ir2vis')
    assert check_protocol_options(LLCM, 'ir2vis') == ('ir2vis', )
    with pytest.raises(ValueError, match=r"^Metric: protocol must be one of"):
        check_protocol_options('market', owner='Metric')
    with pytest.raises(
            ValueError,
            match=r"protocol='sysu' has IR queries and "
            r"a VIS gallery only; directions must be "
            r"\('ir2vis',\), got \('vis2ir',\)"):
        check_protocol_options(SYSU, ['vis2ir'])
    with pytest.raises(ValueError, match='directions must be distinct'):
        check_protocol_options(LLCM, ('vis2ir', 'vis2ir'))
    with pytest.raises(ValueError, match='directions must be distinct'):
        check_protocol_options(LLCM, ('rgb2ir', ))
    with pytest.raises(ValueError, match="gallery_mode='multi' exists only"):
        check_protocol_options(LLCM, gallery_mode='multi')
    with pytest.raises(ValueError, match='gallery_mode must be one of'):
        check_protocol_options(SYSU, gallery_mode='double')
    with pytest.raises(ValueError, match='llcm_vis2ir_mode must be one of'):
        check_protocol_options(LLCM, llcm_vis2ir_mode='both')
