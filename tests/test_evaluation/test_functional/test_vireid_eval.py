# Copyright (c) mmvireid contributors. All rights reserved.
"""eval_sysu / eval_llcm / eval_regdb: hand-worked cases for every rule of
docs/en/protocols.md §1, and exact agreement with a per-query loop written
the way the reference code scores queries."""
import numpy as np
import pytest

from mmvireid.evaluation.functional import (NoValidQueryError, RaggedCMCError,
                                            eval_llcm, eval_regdb, eval_sysu,
                                            vireid_eval)


@pytest.fixture(params=['auto', 'sort', 'count'])
def path(request, monkeypatch):
    """Run a test with the default strategy choice, with every query on the
    sorting path, and with every query on the counting path (whose tie
    fallback then carries the tied rows)."""
    limit = dict(
        auto=vireid_eval.COUNTING_MAX_MATCHES, sort=0,
        count=10**9)[request.param]
    monkeypatch.setattr(vireid_eval, 'COUNTING_MAX_MATCHES', limit)
    return request.param


# ---------------------------------------------------------------------------
# Per-query baseline, structured like the reference eval functions: one
# whole-matrix default argsort, then a Python loop over queries building
# the rows that np.asarray stacks at the end.
# ---------------------------------------------------------------------------
def loop_eval(distmat,
              q_pids,
              g_pids,
              q_cams,
              g_cams,
              protocol,
              max_rank=20,
              sort_kind=None):
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    ranked_all = np.argsort(distmat, axis=1, kind=sort_kind)
    identity_rows, image_rows, aps, inps = [], [], [], []
    num_valid = 0.
    for q in range(num_q):
        ranked = ranked_all[q]
        if protocol == 'sysu':
            dropped = (q_cams[q] == 3) & (g_cams[ranked] == 2)
        elif protocol == 'llcm':
            dropped = ((g_pids[ranked] == q_pids[q]) &
                       (g_cams[ranked] == q_cams[q]))
        else:
            dropped = np.zeros(num_g, dtype=bool)
        kept_pids = g_pids[ranked][~dropped]
        if protocol != 'regdb':
            firsts = sorted(np.unique(kept_pids, return_index=True)[1])
            distinct = np.array([kept_pids[i] for i in firsts])
            identity_rows.append(np.cumsum(distinct == q_pids[q])[:max_rank])
        good = (kept_pids == q_pids[q]).astype(np.int32)
        if good.sum() == 0:
            continue
        found = good.cumsum()
        last = np.flatnonzero(good)[-1]
        inps.append(found[last] / (last + 1.0))
        image_rows.append(np.minimum(found, 1)[:max_rank])
        num_valid += 1
        precision = np.array([n / (k + 1.) for k, n in enumerate(found)])
        aps.append((precision * good).sum() / good.sum())
    assert num_valid > 0, 'no valid query'
    image_cmc = np.asarray(image_rows).astype(np.float32).sum(0) / num_valid
    if protocol == 'regdb':
        cmc = image_cmc
    else:
        cmc = np.asarray(identity_rows).astype(np.float32).sum(0) / num_valid
    return cmc, np.mean(aps), np.mean(inps)


def run(protocol, distmat, q_pids, g_pids, q_cams=None, g_cams=None, **kwargs):
    if protocol == 'regdb':
        return eval_regdb(distmat, q_pids, g_pids, **kwargs)
    fn = eval_sysu if protocol == 'sysu' else eval_llcm
    return fn(distmat, q_pids, g_pids, q_cams, g_cams, **kwargs)


def assert_same(got, expected):
    cmc, mAP, mINP = got
    assert cmc.dtype == np.float32
    np.testing.assert_array_equal(cmc, expected[0])
    # Not just close: the AP/INP arrays and their sums are the reference's.
    assert mAP == expected[1]
    assert mINP == expected[2]
    assert isinstance(mAP, np.float64) and isinstance(mINP, np.float64)


# ---------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------
# Gallery of six: pid / cam, and one distance row shared by both queries.
#   item:     0  1  2  3  4  5
#   pid:      1  2  1  3  2  3
#   cam:      1  2  2  4  5  1
#   distance .5 .1 .2 .3 .4 .6   -> ranking 1, 2, 3, 4, 0, 5
SYSU_G_PIDS = np.array([1, 2, 1, 3, 2, 3])
SYSU_G_CAMS = np.array([1, 2, 2, 4, 5, 1])
SYSU_ROW = np.array([.5, .1, .2, .3, .4, .6])


def test_sysu_cam3_query_drops_camera2_of_every_identity():
    # Query 0 (pid 1, cam 3) loses items 1 and 2 (camera 2; pid 2 and pid
    # 1): kept pids 3, 2, 1, 3 -> match at kept rank 3.
    #   AP = 1/3, INP = 1/3, identity list 3, 2, 1 -> row 0 0 1.
    # Query 1 (pid 1, cam 6) keeps all: pids 2, 1, 3, 2, 1, 3 -> matches at
    # ranks 2 and 5.  AP = (1/2 + 2/5) / 2 = .45, INP = 2/5,
    #   identity list 2, 1, 3 -> row 0 1 1.
    distmat = np.stack([SYSU_ROW, SYSU_ROW])
    cmc, mAP, mINP = eval_sysu(
        distmat,
        np.array([1, 1]),
        SYSU_G_PIDS,
        np.array([3, 6]),
        SYSU_G_CAMS,
        max_rank=3)
    np.testing.assert_array_equal(cmc, np.float32([0, .5, 1]))
    assert mAP == pytest.approx((1 / 3 + .45) / 2, abs=1e-15)
    assert mINP == pytest.approx((1 / 3 + .4) / 2, abs=1e-15)
    # The cam-3 query alone: its pid-1 item of camera 2 (ranked 2nd) must
    # not count, so Rank-1 and Rank-2 miss.
    cmc, mAP, _ = eval_sysu(
        SYSU_ROW[None],
        np.array([1]),
        SYSU_G_PIDS,
        np.array([3]),
        SYSU_G_CAMS,
        max_rank=3)
    np.testing.assert_array_equal(cmc, np.float32([0, 0, 1]))
    assert mAP == pytest.approx(1 / 3, abs=1e-15)
    # A camera-6 query keeps the camera-2 items of every identity.
    cmc, mAP, _ = eval_sysu(
        SYSU_ROW[None],
        np.array([1]),
        SYSU_G_PIDS,
        np.array([6]),
        SYSU_G_CAMS,
        max_rank=3)
    np.testing.assert_array_equal(cmc, np.float32([0, 1, 1]))
    assert mAP == pytest.approx(.45, abs=1e-15)


def test_sysu_cam3_and_cam6_rows_of_different_length_are_ragged():
    # With max_rank 20 (-> 6, the gallery size) the cam-6 query's per-image
    # row has 6 entries and the cam-3 query's only 4: the reference's
    # np.asarray fails. 'pad' extends the short row instead.
    distmat = np.stack([SYSU_ROW, SYSU_ROW])
    args = (distmat, np.array([1, 1]), SYSU_G_PIDS, np.array([3,
                                                              6]), SYSU_G_CAMS)
    with pytest.raises(
            RaggedCMCError,
            match=r'eval_sysu: per-image CMC rows have different '
            r'lengths \(4 to 6; 1 of 2 rows'):
        eval_sysu(*args)
    with pytest.raises(ValueError):  # RaggedCMCError is a ValueError
        loop_eval(*args, protocol='sysu')
    cmc, mAP, mINP = eval_sysu(*args, ragged='pad')
    # Identity rows are both 3 long (3 distinct pids), so the curve is too.
    np.testing.assert_array_equal(cmc, np.float32([0, .5, 1]))
    assert mAP == pytest.approx((1 / 3 + .45) / 2, abs=1e-15)
    assert mINP == pytest.approx((1 / 3 + .4) / 2, abs=1e-15)


def test_identity_deduplicated_cmc_differs_from_per_image_cmc():
    # Ranked pids 5 5 5 7 1 (query pid 1): the identity list is 5, 7, 1, so
    # SYSU/LLCM hit at rank 3 while RegDB's per-image CMC hits at rank 5.
    g_pids = np.array([5, 5, 5, 7, 1])
    g_cams = np.array([1, 4, 5, 1, 4])
    distmat = np.array([[0., 1., 2., 3., 4.]])
    q_pids, q_cams = np.array([1]), np.array([6])
    for fn in (eval_sysu, eval_llcm):
        cmc, mAP, mINP = fn(distmat, q_pids, g_pids, q_cams, g_cams)
        # 3 distinct identities: the curve is 3 long (every row is).
        np.testing.assert_array_equal(cmc, np.float32([0, 0, 1]))
        assert mAP == pytest.approx(1 / 5) and mINP == pytest.approx(1 / 5)
    cmc, mAP, mINP = eval_regdb(distmat, q_pids, g_pids)
    np.testing.assert_array_equal(cmc, np.float32([0, 0, 0, 0, 1]))
    assert mAP == pytest.approx(1 / 5) and mINP == pytest.approx(1 / 5)


def test_invalid_queries_get_zero_rows_but_do_not_count():
    # Three queries; pid 9 is not in the gallery. Valid queries hit at
    # rank 1 (pid 1) and rank 2 (pid 2). CMC divides by 2, not 3.
    g_pids = np.array([1, 2, 3])
    g_cams = np.array([1, 4, 5])
    distmat = np.array([[0., 1., 2.], [0., 1., 2.], [2., 1., 0.]])
    q_pids, q_cams = np.array([1, 2, 9]), np.array([6, 6, 6])
    cmc, mAP, mINP = eval_sysu(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(cmc, np.float32([.5, 1, 1]))
    assert mAP == pytest.approx((1 + .5) / 2)
    assert mINP == pytest.approx((1 + .5) / 2)
    cmc, _, _ = eval_regdb(distmat, q_pids, g_pids)
    np.testing.assert_array_equal(cmc, np.float32([.5, 1, 1]))


def test_sysu_query_whose_matches_are_all_in_camera2_is_invalid():
    # pid 1's only gallery item is in camera 2: a cam-3 query of pid 1 is
    # invalid, a cam-6 one is valid (rank 1).
    g_pids, g_cams = np.array([1, 2, 2]), np.array([2, 1, 4])
    distmat = np.array([[0., 1., 2.]] * 2)
    # Max rank 1 keeps every row (1 per-image entry, 1 identity) equal.
    cmc, mAP, _ = eval_sysu(
        distmat,
        np.array([1, 1]),
        g_pids,
        np.array([3, 6]),
        g_cams,
        max_rank=1)
    np.testing.assert_array_equal(cmc, np.float32([1]))
    assert mAP == 1.0
    with pytest.raises(NoValidQueryError):
        eval_sysu(distmat[:1], np.array([1]), g_pids, np.array([3]), g_cams)


def test_llcm_drops_same_pid_and_same_camera_only():
    # Query pid 1, camera 2 (VIS cam 2 == NIR cam 2). Gallery ranked in
    # index order:
    #   0: pid 1 cam 2 -> dropped (same pid, same camera)
    #   1: pid 3 cam 2 -> kept (same camera, other pid)
    #   2: pid 1 cam 4 -> kept match (same pid, other camera)
    #   3: pid 1 cam 2 -> dropped
    #   4: pid 4 cam 5 -> kept
    g_pids = np.array([1, 3, 1, 1, 4])
    g_cams = np.array([2, 2, 4, 2, 5])
    distmat = np.arange(5.)[None]
    cmc, mAP, mINP = eval_llcm(distmat, np.array([1]), g_pids, np.array([2]),
                               g_cams)
    # Kept: pid 3, 1, 4 -> match at kept rank 2; identities 3, 1, 4.
    np.testing.assert_array_equal(cmc, np.float32([0, 1, 1]))
    assert mAP == .5 and mINP == .5
    # SYSU's rule would keep the camera-2 pid-1 items (query not cam 3).
    cmc, mAP, _ = eval_sysu(distmat, np.array([1]), g_pids, np.array([2]),
                            g_cams)
    np.testing.assert_array_equal(cmc, np.float32([1, 1, 1]))
    assert mAP == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_regdb_filters_nothing_even_with_equal_cameras():
    # eval_regdb takes no cameras: every gallery item counts, same pid or
    # not. Matches at ranks 1 and 3 -> AP (1 + 2/3)/2, INP 2/3.
    g_pids = np.array([1, 2, 1, 3])
    cmc, mAP, mINP = eval_regdb(np.arange(4.)[None], np.array([1]), g_pids)
    np.testing.assert_array_equal(cmc, np.float32([1, 1, 1, 1]))
    assert mAP == pytest.approx((1 + 2 / 3) / 2)
    assert mINP == pytest.approx(2 / 3)


def test_minp_uses_rank_of_last_correct_item():
    # Matches at ranks 2, 3 and 6 of 6: INP = 3 / 6; AP = (1/2 + 2/3 +
    # 3/6) / 3.
    g_pids = np.array([2, 1, 1, 3, 4, 1])
    cmc, mAP, mINP = eval_regdb(np.arange(6.)[None], np.array([1]), g_pids)
    assert mINP == 0.5
    assert mAP == pytest.approx((1 / 2 + 2 / 3 + 3 / 6) / 3, abs=1e-15)
    np.testing.assert_array_equal(cmc, np.float32([0, 1, 1, 1, 1, 1]))


def test_max_rank_larger_than_gallery_is_capped():
    g_pids = np.array([1, 2, 3, 4, 5])
    g_cams = np.array([1, 1, 4, 4, 5])
    distmat = np.arange(5.)[None]
    for protocol in ('sysu', 'llcm', 'regdb'):
        cmc, _, _ = run(
            protocol,
            distmat,
            np.array([3]),
            g_pids,
            np.array([6]),
            g_cams,
            max_rank=20)
        assert cmc.shape == (5, )
        np.testing.assert_array_equal(cmc, np.float32([0, 0, 1, 1, 1]))
    cmc, _, _ = eval_regdb(distmat, np.array([3]), g_pids, max_rank=2)
    np.testing.assert_array_equal(cmc, np.float32([0, 0]))


def test_identity_rows_all_shorter_than_max_rank_give_a_short_curve():
    # 12 gallery items of only 3 identities: the per-image rows are 12
    # long, every identity row is 3 long, and the curve is 3 long.
    g_pids = np.repeat([1, 2, 3], 4)
    g_cams = np.tile([1, 4, 5, 1], 3)
    distmat = np.random.default_rng(0).random((4, 12))
    q_pids, q_cams = np.array([1, 2, 3, 2]), np.array([6, 6, 3, 3])
    got = eval_sysu(distmat, q_pids, g_pids, q_cams, g_cams)
    assert got[0].shape == (3, )
    assert got[0][-1] == 1
    assert_same(got, loop_eval(distmat, q_pids, g_pids, q_cams, g_cams,
                               'sysu'))


def test_ragged_identity_rows_raise_or_pad():
    # pid 4's only item is in camera 2. A cam-6 query sees 4 identities, a
    # cam-3 one only 3 -> identity rows of length 4 and 3 (max_rank 5);
    # per-image rows are all 5 long (7 or 6 kept items).
    g_pids = np.array([1, 1, 2, 2, 3, 3, 4])
    g_cams = np.array([1, 4, 1, 4, 1, 5, 2])
    distmat = np.array([[6., 5, 4, 3, 2, 1, 0], [6., 5, 4, 3, 2, 1, 0]])
    q_pids, q_cams = np.array([1, 1]), np.array([6, 3])
    with pytest.raises(
            RaggedCMCError,
            match='eval_sysu: identity CMC rows have different '
            r'lengths \(3 to 4'):
        eval_sysu(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    with pytest.raises(ValueError):
        loop_eval(distmat, q_pids, g_pids, q_cams, g_cams, 'sysu', 5)
    # Pad: cam-6 identity list 4, 3, 2, 1 (hit at 4); cam-3 list 3, 2, 1
    # (hit at 3, padded with its last value 1).
    cmc, _, _ = eval_sysu(
        distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5, ragged='pad')
    np.testing.assert_array_equal(cmc, np.float32([0, 0, .5, 1]))


def test_no_valid_query_error_is_assertion_and_value_error():
    distmat = np.zeros((2, 3))
    with pytest.raises(
            NoValidQueryError,
            match='eval_regdb: no valid query: for none of the 2 '
            r'queries does an item with its pid remain in the '
            r'gallery \(3 items\)') as info:
        eval_regdb(distmat, np.array([7, 8]), np.array([1, 2, 3]))
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(AssertionError):
        eval_sysu(distmat, np.array([7, 8]), np.array([1, 2, 3]),
                  np.array([3, 6]), np.array([1, 2, 4]))
    with pytest.raises(NoValidQueryError):  # empty gallery
        eval_llcm(
            np.zeros((2, 0)), np.array([1, 2]), np.array([]), np.array([1, 2]),
            np.array([]))


def test_ties_follow_numpy_default_argsort(path):
    # All-equal distances: the ranking is whatever numpy's default argsort
    # returns. The results must equal a loop that uses the same call.
    rng = np.random.default_rng(3)
    differs_from_stable = False
    for dtype in (np.float32, np.float64):
        for num_g in (9, 40, 150):
            distmat = rng.integers(0, 3, (60, num_g)).astype(dtype)
            q_pids = rng.integers(0, 5, 60)
            g_pids = rng.integers(0, 5, num_g)
            q_cams = rng.integers(1, 3, 60)
            g_cams = rng.integers(1, 3, num_g)
            for protocol in ('sysu', 'llcm', 'regdb'):
                mr = 3 if protocol != 'regdb' else 20
                expected = loop_eval(distmat, q_pids, g_pids, q_cams + 2,
                                     g_cams, protocol, mr)
                got = run(
                    protocol,
                    distmat,
                    q_pids,
                    g_pids,
                    q_cams + 2,
                    g_cams,
                    max_rank=mr,
                    block_size=7)
                assert_same(got, expected)
                stable = loop_eval(
                    distmat,
                    q_pids,
                    g_pids,
                    q_cams + 2,
                    g_cams,
                    protocol,
                    mr,
                    sort_kind='stable')
                differs_from_stable |= not (np.array_equal(
                    stable[0], expected[0]) and stable[1] == expected[1])
    if not differs_from_stable:
        pytest.skip('this numpy sorts these ties stably; the tie check '
                    'above was not discriminative')


# ---------------------------------------------------------------------------
# Property tests against the per-query loop
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('protocol', ['sysu', 'llcm', 'regdb'])
@pytest.mark.parametrize('ties', [False, True])
def test_random_inputs_match_loop_exactly(protocol, ties, path):
    rng = np.random.default_rng(['sysu', 'llcm', 'regdb'].index(protocol) * 2 +
                                ties)
    shapes = [(1, 1), (1, 30), (17, 5), (50, 64), (120, 37), (33, 300)]
    checked = 0
    for num_q, num_g in shapes:
        for block in (1, 7, None):
            n_ids = int(rng.integers(1, 12))
            q_pids = rng.integers(0, n_ids + 2, num_q)  # some absent
            g_pids = rng.integers(0, n_ids, num_g)
            if protocol == 'sysu':
                q_cams = rng.choice([3, 6], num_q)
                g_cams = rng.choice([1, 2, 4, 5], num_g)
            else:
                q_cams = rng.integers(1, 4, num_q)
                g_cams = rng.integers(1, 4, num_g)
            dtype = rng.choice([np.float32, np.float64])
            if ties:
                distmat = rng.integers(0, 4, (num_q, num_g)).astype(dtype)
            else:
                distmat = rng.standard_normal((num_q, num_g)).astype(dtype)
            # A max_rank no longer than every row keeps the rows equal.
            max_rank = int(rng.choice([1, 2, 3]))
            try:
                expected = loop_eval(distmat, q_pids, g_pids, q_cams, g_cams,
                                     protocol, max_rank)
            except AssertionError:
                with pytest.raises(NoValidQueryError):
                    run(protocol,
                        distmat,
                        q_pids,
                        g_pids,
                        q_cams,
                        g_cams,
                        max_rank=max_rank,
                        block_size=block)
                continue
            except ValueError:
                with pytest.raises(RaggedCMCError):
                    run(protocol,
                        distmat,
                        q_pids,
                        g_pids,
                        q_cams,
                        g_cams,
                        max_rank=max_rank,
                        block_size=block)
                continue
            got = run(
                protocol,
                distmat,
                q_pids,
                g_pids,
                q_cams,
                g_cams,
                max_rank=max_rank,
                block_size=block)
            assert_same(got, expected)
            # Without raggedness 'pad' changes nothing.
            assert_same(
                run(protocol,
                    distmat,
                    q_pids,
                    g_pids,
                    q_cams,
                    g_cams,
                    max_rank=max_rank,
                    block_size=block,
                    ragged='pad'), expected)
            checked += 1
    assert checked >= 9


@pytest.mark.parametrize('protocol', ['sysu', 'llcm'])
def test_realistic_shapes_match_loop_including_errors(protocol, path):
    # SYSU/LLCM-like galleries: one item per (id, camera), many ids.
    rng = np.random.default_rng(7)
    cams = [1, 2, 4, 5] if protocol == 'sysu' else [1, 2, 3, 4]
    g_pids = np.repeat(np.arange(30), len(cams))
    g_cams = np.tile(cams, 30)
    num_q = 200
    q_pids = rng.integers(0, 30, num_q)
    q_cams = rng.choice([3, 6] if protocol == 'sysu' else [1, 2, 3], num_q)
    feats_q = rng.standard_normal((num_q, 8)).astype(np.float32)
    feats_g = rng.standard_normal((g_pids.size, 8)).astype(np.float32)
    distmat = -(feats_q @ feats_g.T)
    for max_rank in (5, 20, 100):
        try:
            expected = loop_eval(distmat, q_pids, g_pids, q_cams, g_cams,
                                 protocol, max_rank)
        except ValueError:
            with pytest.raises(RaggedCMCError):
                run(protocol,
                    distmat,
                    q_pids,
                    g_pids,
                    q_cams,
                    g_cams,
                    max_rank=max_rank)
            continue
        for block in (None, 1, 33):
            assert_same(
                run(protocol,
                    distmat,
                    q_pids,
                    g_pids,
                    q_cams,
                    g_cams,
                    max_rank=max_rank,
                    block_size=block), expected)


def test_argument_errors():
    d = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r'distmat must be 2-D'):
        eval_regdb(np.zeros(3), np.array([1]), np.array([1, 2, 3]))
    with pytest.raises(
            ValueError,
            match=r'`g_pids` must be a 1-D array of '
            r'length 3 \(matching distmat\), got shape \(2,\)'):
        eval_regdb(d, np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(ValueError, match=r'`q_camids` must be a 1-D array'):
        eval_sysu(d, np.array([1, 2]), np.array([1, 2, 3]), np.array([3]),
                  np.array([1, 2, 4]))
    with pytest.raises(
            ValueError,
            match=r"ragged must be one of \('error', "
            r"'pad'\), got 'clip'"):
        eval_regdb(d, np.array([1, 2]), np.array([1, 2, 3]), ragged='clip')
    with pytest.raises(ValueError, match='max_rank must be a positive int'):
        eval_regdb(d, np.array([1, 2]), np.array([1, 2, 3]), max_rank=0)
    with pytest.raises(ValueError, match='block_size must be a positive'):
        eval_regdb(d, np.array([1, 2]), np.array([1, 2, 3]), block_size=0)
