# Copyright (c) mmvireid contributors. All rights reserved.
"""Benchmark the vectorised protocol metrics against a per-query loop.

The baseline below scores queries one at a time the way the public VI-ReID
evaluation code does (one whole-matrix ``argsort``, then a Python loop that
filters, deduplicates and accumulates rows). Both are run on the same
random distance matrices at the sizes of the real test sets; the script
prints both times and their ratio and checks that the results agree (CMC
exactly, mAP/mINP to 1e-9; in practice they are bit-identical).

Examples::

    # full sizes (SYSU-MM01 all-search x10 trials, LLCM both directions,
    # a large LLCM-style matrix); a few minutes on 2 cores, mostly baseline
    python tools/analysis_tools/benchmark_eval.py

    # tiny sizes, seconds (CI)
    python tools/analysis_tools/benchmark_eval.py --small
"""
import argparse
import time
from typing import Callable, List, NamedTuple

import numpy as np

from mmvireid.evaluation.functional import eval_llcm, eval_regdb, eval_sysu


# ---------------------------------------------------------------------------
# Baseline: per-query loop, structured like the reference eval functions.
# ---------------------------------------------------------------------------
def baseline_eval(distmat,
                  q_pids,
                  g_pids,
                  q_cams,
                  g_cams,
                  protocol,
                  max_rank=20):
    """Per-query scoring like the reference ``eval_sysu``/``eval_llcm``/
    ``eval_regdb``; returns ``(cmc, mAP, mINP)``."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    order_all = np.argsort(distmat, axis=1)
    ranked_pids = g_pids[order_all]
    hits_all = (ranked_pids == q_pids[:, None]).astype(np.int32)
    id_rows, img_rows, aps, inps = [], [], [], []
    num_valid = 0.
    for q in range(num_q):
        order = order_all[q]
        if protocol == 'sysu':
            drop = (q_cams[q] == 3) & (g_cams[order] == 2)
        elif protocol == 'llcm':
            drop = (g_pids[order] == q_pids[q]) & (g_cams[order] == q_cams[q])
        else:
            drop = np.zeros(num_g, dtype=bool)
        keep = ~drop
        if protocol != 'regdb':
            kept = ranked_pids[q][keep]
            first = np.unique(kept, return_index=True)[1]
            distinct = [kept[i] for i in sorted(first)]
            match = (distinct == q_pids[q]).astype(np.int32)
            id_rows.append(match.cumsum()[:max_rank])
        hits = hits_all[q][keep]
        if not np.any(hits):
            continue
        cum = hits.cumsum()
        last = np.max(np.where(hits == 1))
        inps.append(cum[last] / (last + 1.0))
        cum[cum > 1] = 1
        img_rows.append(cum[:max_rank])
        num_valid += 1.
        prec = np.asarray([x / (i + 1.) for i, x in enumerate(hits.cumsum())])
        aps.append((prec * hits).sum() / hits.sum())
    assert num_valid > 0, 'no valid query'
    img_cmc = np.asarray(img_rows).astype(np.float32).sum(0) / num_valid
    if protocol == 'regdb':
        cmc = img_cmc
    else:
        cmc = np.asarray(id_rows).astype(np.float32).sum(0) / num_valid
    return cmc, np.mean(aps), np.mean(inps)


def ours(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank=20):
    if protocol == 'regdb':
        return eval_regdb(distmat, q_pids, g_pids, max_rank)
    fn = eval_sysu if protocol == 'sysu' else eval_llcm
    return fn(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)


# ---------------------------------------------------------------------------
# Synthetic test sets
# ---------------------------------------------------------------------------
class Case(NamedTuple):
    name: str
    protocol: str
    num_ids: int
    q_cams: tuple
    g_cams: tuple
    num_query: int
    num_gallery: int
    trials: int
    # True: one item per distinct (id, camera) folder, as a sampled
    # gallery (or DEEN's sampled rows) has; False: any number per folder.
    query_per_folder: bool = False
    gallery_per_folder: bool = False


LLCM_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)
LLCM_VIS_CAMS = tuple(range(1, 10))

FULL_CASES = [
    # SYSU-MM01 all-search: 3803 IR queries (cams 3, 6) of 96 ids vs one
    # VIS image per existing (id, camera) folder of cams 1, 2, 4, 5 (301).
    Case(
        'SYSU all-search',
        'sysu',
        96, (3, 6), (1, 2, 4, 5),
        3803,
        301,
        10,
        gallery_per_folder=True),
    # LLCM IR->VIS (DEEN test_mode [1, 2]): 7166 NIR queries of 351 ids vs
    # one VIS image per (id, camera) folder (484).
    Case(
        'LLCM ir2vis',
        'llcm',
        351,
        LLCM_NIR_CAMS,
        LLCM_VIS_CAMS,
        7166,
        484,
        10,
        gallery_per_folder=True),
    # LLCM DEEN [2, 1]: one NIR image per folder as rows vs all 8680 VIS.
    Case(
        'LLCM vis2ir (deen rows)',
        'llcm',
        351,
        LLCM_NIR_CAMS,
        LLCM_VIS_CAMS,
        484,
        8680,
        10,
        query_per_folder=True),
    # RegDB: 206 ids x 10 images per modality, all vs all.
    Case('RegDB vis2ir', 'regdb', 206, (1, ), (2, ), 2060, 2060, 1),
    # A large matrix: 7.6k queries x 3.5k gallery.
    Case('large (llcm rules)', 'llcm', 351, LLCM_VIS_CAMS, LLCM_VIS_CAMS, 7600,
         3500, 1),
]

SMALL_CASES = [
    Case(
        'SYSU-like small',
        'sysu',
        12, (3, 6), (1, 2, 4, 5),
        150,
        40,
        3,
        gallery_per_folder=True),
    Case(
        'LLCM-like small',
        'llcm',
        20, (1, 2, 4), (1, 2, 3, 4),
        200,
        45,
        2,
        gallery_per_folder=True),
    Case(
        'LLCM deen-like small',
        'llcm',
        20, (1, 2, 4), (1, 2, 3, 4),
        40,
        300,
        1,
        query_per_folder=True),
    Case('RegDB-like small', 'regdb', 20, (1, ), (2, ), 100, 100, 1),
]


def draw_items(rng, num_ids, cams, num, per_folder, cover):
    """``(num, 2)`` (pid, cam) pairs.

    ``cover``: every identity appears, in the first and last camera when
    there is room, as in the real galleries (no identity then vanishes
    under a camera filter, which would make the reference's rows ragged).
    """
    ids = np.arange(num_ids)
    folders = np.array([(p, c) for p in ids for c in cams])
    if not cover:
        base = np.zeros((0, 2), dtype=folders.dtype)
    elif 2 * num_ids <= num and len(cams) > 1:
        base = np.concatenate([
            np.stack([ids, np.full(num_ids, cams[0])], axis=1),
            np.stack([ids, np.full(num_ids, cams[-1])], axis=1)
        ])
    else:
        base = np.stack([ids, rng.choice(cams, num_ids)], axis=1)
    if per_folder:
        used = set(map(tuple, base.tolist()))
        rest = np.array([f for f in folders.tolist() if tuple(f) not in used])
        extra = rest[rng.choice(len(rest), num - len(base), replace=False)]
    else:
        extra = folders[rng.integers(0, len(folders), num - len(base))]
    items = np.concatenate([base, extra])
    return items[rng.permutation(len(items))]


def make_trial(case: Case, rng: np.random.Generator, dim: int = 64):
    """Query/gallery labels and an identity-structured distance matrix."""
    centres = rng.standard_normal((case.num_ids, dim)).astype(np.float32)
    g = draw_items(
        rng,
        case.num_ids,
        case.g_cams,
        case.num_gallery,
        case.gallery_per_folder,
        cover=True)
    q = draw_items(
        rng,
        case.num_ids,
        case.q_cams,
        case.num_query,
        case.query_per_folder,
        cover=case.query_per_folder)

    def feats(pids):
        f = centres[pids] + 1.5 * rng.standard_normal(
            (len(pids), dim)).astype(np.float32)
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    distmat = -(feats(q[:, 0]) @ feats(g[:, 0]).T)
    return distmat, q[:, 0], g[:, 0], q[:, 1], g[:, 1]


def timed(fn: Callable, repeat: int):
    best, out = float('inf'), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_case(case: Case, rng, repeat: int, baseline_repeat: int):
    t_base = t_ours = 0.0
    shape = None
    for _ in range(case.trials):
        data = make_trial(case, rng)
        shape = data[0].shape
        tb, ref = timed(lambda: baseline_eval(*data, case.protocol),
                        baseline_repeat)
        to, got = timed(lambda: ours(*data, case.protocol), repeat)
        t_base += tb
        t_ours += to
        np.testing.assert_array_equal(got[0], ref[0])
        assert got[0].dtype == ref[0].dtype == np.float32
        np.testing.assert_allclose(got[1], ref[1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[2], ref[2], rtol=0, atol=1e-9)
    return shape, t_base, t_ours


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time eval_sysu/eval_llcm/eval_regdb against a '
        'per-query loop on random data and check they agree.')
    parser.add_argument(
        '--small', action='store_true', help='tiny sizes (seconds), for CI')
    parser.add_argument(
        '--repeat',
        type=int,
        default=3,
        help='runs of the vectorised version per trial; the best counts')
    parser.add_argument(
        '--baseline-repeat',
        type=int,
        default=1,
        help='runs of the loop baseline per trial; the best counts')
    parser.add_argument(
        '--trials',
        type=int,
        default=None,
        help='override the number of trials of every case')
    parser.add_argument(
        '--min-speedup',
        type=float,
        default=None,
        help='exit with an error when a case is slower than this ratio')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    cases = SMALL_CASES if args.small else FULL_CASES
    rng = np.random.default_rng(args.seed)
    rows = []
    header = (f'{"case":<34} {"query x gallery":>16} {"trials":>6} '
              f'{"loop (s)":>9} {"ours (s)":>9} {"speed-up":>9}')
    print(header)
    print('-' * len(header))
    for case in cases:
        if args.trials is not None:
            case = case._replace(trials=args.trials)
        shape, t_base, t_ours = run_case(case, rng, args.repeat,
                                         args.baseline_repeat)
        ratio = t_base / t_ours
        rows.append(
            dict(
                case=case.name,
                shape=shape,
                trials=case.trials,
                baseline_s=t_base,
                ours_s=t_ours,
                speedup=ratio))
        print(
            f'{case.name:<34} {f"{shape[0]} x {shape[1]}":>16} '
            f'{case.trials:>6} {t_base:>9.3f} {t_ours:>9.3f} '
            f'{ratio:>8.1f}x',
            flush=True)
    print('All results identical (CMC exact, mAP/mINP within 1e-9).')
    if args.min_speedup is not None:
        slow = [r for r in rows if r['speedup'] < args.min_speedup]
        if slow:
            raise SystemExit('benchmark_eval: slower than '
                             f'{args.min_speedup}x: ' +
                             ', '.join(f'{r["case"]} ({r["speedup"]:.1f}x)'
                                       for r in slow))
    return rows


if __name__ == '__main__':
    main()
