# Copyright (c) mmvireid contributors. All rights reserved.
"""VIReIDMetric end to end on fake data samples, for every protocol."""
import json
import random
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement

from mmvireid.evaluation import VIReIDMetric
from mmvireid.evaluation.functional import (eval_llcm, eval_regdb, eval_sysu,
                                            re_ranking)
from mmvireid.registry import METRICS

SYSU_IR_CAMS = (3, 6)
SYSU_VIS_CAMS = (1, 2, 4, 5)
LLCM_VIS_CAMS = tuple(range(1, 10))
LLCM_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)


class FakeSet:
    """Test samples in the reference listing order, with known features.

    Each modality lists ids ascending, cameras inner, files sorted; every
    (id, camera) folder has 1..max_files files. Features = identity centre
    + noise, so retrieval is neither perfect nor random.
    """

    def __init__(self,
                 seed,
                 ids,
                 cams,
                 max_files=3,
                 dim=16,
                 noise=1.2,
                 always_cam=None,
                 min_files=1):
        rng = np.random.default_rng(seed)
        centres = {pid: rng.standard_normal(dim) for pid in ids}
        self.samples = []
        self.folders = {m: [] for m in cams}  # per modality: list of lists
        for modality, mod_cams in cams.items():
            for pid in ids:
                for cam in mod_cams:
                    if cam != always_cam and rng.random() < 0.3:
                        continue  # folder absent
                    folder = []
                    for f in range(
                            int(rng.integers(min_files, max_files + 1))):
                        feat = centres[pid] + noise * rng.standard_normal(dim)
                        feat /= np.linalg.norm(feat)
                        folder.append(len(self.samples))
                        self.samples.append(
                            dict(
                                pred_feat=torch.tensor(
                                    feat, dtype=torch.float32),
                                gt_label=torch.tensor([pid]),
                                cam_id=cam,
                                modality=modality,
                                img_path=f'/d/{modality}/cam{cam}/{pid:04d}/'
                                f'{f + 1:04d}.jpg',
                                sample_idx=len(self.samples)))
                    self.folders[modality].append(folder)

    def arrays(self, idx):
        s = [self.samples[i] for i in idx]
        feat = np.stack([x['pred_feat'].numpy() for x in s])
        pid = np.array([int(x['gt_label']) for x in s])
        cam = np.array([x['cam_id'] for x in s])
        return feat, pid, cam

    def all_of(self, modality):
        return [i for f in self.folders[modality] for i in f]

    def single(self, modality, trial):
        rng = random.Random(trial)  # == random.seed(trial) + choice
        return [rng.choice(f) for f in self.folders[modality]]

    def multi(self, modality, trial):
        rs = np.random.RandomState(trial)
        return [
            int(i) for f in self.folders[modality]
            for i in rs.choice(f, 10, replace=False)
        ]


def expected_scores(fake, q_idx, g_idx, fn, max_rank=20, dist=None):
    qf, qp, qc = fake.arrays(q_idx)
    gf, gp, gc = fake.arrays(g_idx)
    distmat = -(qf @ gf.T) if dist is None else dist(qf, gf)
    if fn is eval_regdb:
        return eval_regdb(distmat, qp, gp, max_rank)
    return fn(distmat, qp, gp, qc, gc, max_rank)


def reference_means(trials):
    """The reference test loops' averaging (sum, then / number of trials;
    the CMC stays float32), as fractions."""
    cmc, m, n = trials[0]
    for c, a, b in trials[1:]:
        cmc, m, n = cmc + c, m + a, n + b
    k = len(trials)
    return cmc / k, m / k, n / k


def check_direction(metrics, prefix, trials, ranks=(1, 5, 10, 20)):
    cmc, mAP, mINP = reference_means(trials)
    for r in ranks:
        assert metrics[f'{prefix}Rank-{r}'] == float(cmc[r - 1]) * 100
        if prefix:
            std = np.std([float(t[0][r - 1]) for t in trials]) * 100
            assert metrics[f'{prefix}Rank-{r}_std'] == pytest.approx(std)
    assert metrics[f'{prefix}mAP'] == pytest.approx(mAP * 100, abs=1e-12)
    assert metrics[f'{prefix}mINP'] == pytest.approx(mINP * 100, abs=1e-12)
    if prefix:
        std = np.std([t[1] for t in trials]) * 100
        assert metrics[f'{prefix}mAP_std'] == pytest.approx(std, abs=1e-12)


def run_metric(metric, samples, batch=7):
    for b in range(0, len(samples), batch):
        metric.process(None, samples[b:b + batch])
    return metric.compute_metrics(metric.results)


@pytest.fixture
def sysu():
    return FakeSet(
        0,
        ids=list(range(1, 31)),
        cams=dict(ir=SYSU_IR_CAMS, vis=SYSU_VIS_CAMS),
        always_cam=1)


def test_sysu_single_shot_ten_trials(sysu):
    metric = VIReIDMetric(protocol='sysu', num_trials=10)
    # Samples arrive shuffled (as from several ranks); sample_idx orders
    # them back.
    samples = list(sysu.samples)
    random.Random(1).shuffle(samples)
    metrics = run_metric(metric, samples)

    q_idx = sysu.all_of('ir')
    trials = [
        expected_scores(sysu, q_idx, sysu.single('vis', t), eval_sysu)
        for t in range(10)
    ]
    check_direction(metrics, '', trials)
    check_direction(metrics, 'ir2vis/', trials)
    assert not any(k.startswith('vis2ir') for k in metrics)
    assert set(metrics) == {
        f'{p}{n}'
        for p in ('', 'ir2vis/')
        for n in ('Rank-1', 'Rank-5', 'Rank-10', 'Rank-20', 'mAP', 'mINP')
    } | {
        f'ir2vis/{n}_std'
        for n in ('Rank-1', 'Rank-5', 'Rank-10', 'Rank-20', 'mAP', 'mINP')
    }
    # The trials differ, so the spread is real.
    assert metrics['ir2vis/mAP_std'] > 0
    # Per-trial numbers for tools/test.py --out, JSON-ready.
    res = json.loads(json.dumps(metric.last_results))
    assert res['protocol'] == 'sysu' and res['main_direction'] == 'ir2vis'
    per_trial = res['directions']['ir2vis']['trials']
    assert [t['trial'] for t in per_trial] == list(range(10))
    for rec, (cmc, mAP, mINP) in zip(per_trial, trials):
        assert rec['Rank-1'] == float(cmc[0]) * 100
        assert rec['mAP'] == float(mAP) * 100
        assert rec['cmc'] == [float(v) * 100 for v in cmc]
        assert rec['num_query'] == len(q_idx)
        assert rec['num_gallery'] == len(sysu.folders['vis'])
    assert res['directions']['ir2vis']['mean']['mAP'] == metrics['mAP']


def test_sysu_multi_shot(sysu):
    fake = FakeSet(
        1,
        ids=list(range(1, 9)),
        cams=dict(ir=SYSU_IR_CAMS, vis=SYSU_VIS_CAMS),
        always_cam=1,
        min_files=10,
        max_files=12)
    metric = VIReIDMetric(protocol='sysu', num_trials=3, gallery_mode='multi')
    metrics = run_metric(metric, fake.samples)
    trials = [
        expected_scores(fake, fake.all_of('ir'), fake.multi('vis', t),
                        eval_sysu) for t in range(3)
    ]
    # 8 identities: the identity-level curve is 8 long.
    assert 'Rank-10' not in metrics
    check_direction(metrics, 'ir2vis/', trials, ranks=(1, 5))
    # A folder with fewer than 10 files cannot give a multi-shot gallery.
    metric = VIReIDMetric(protocol='sysu', gallery_mode='multi')
    with pytest.raises(
            ValueError,
            match=r"multi-shot gallery draw failed "
            r"for the 'vis' candidates: draw_multi_shot: group "):
        run_metric(metric, sysu.samples)


def test_sysu_max_rank_below_20_reports_available_ranks(sysu):
    metric = VIReIDMetric(protocol='sysu', num_trials=2, max_rank=5)
    metrics = run_metric(metric, sysu.samples)
    assert 'Rank-5' in metrics and 'Rank-10' not in metrics
    trials = [
        expected_scores(
            sysu,
            sysu.all_of('ir'),
            sysu.single('vis', t),
            eval_sysu,
            max_rank=5) for t in range(2)
    ]
    check_direction(metrics, 'ir2vis/', trials, ranks=(1, 5))


@pytest.mark.parametrize('mode', ['symmetric', 'deen'])
def test_llcm_both_directions(mode):
    fake = FakeSet(
        2,
        ids=list(range(100, 126)),
        cams=dict(vis=LLCM_VIS_CAMS, ir=LLCM_NIR_CAMS),
        noise=1.5)
    metric = VIReIDMetric(protocol='llcm', num_trials=4, llcm_vis2ir_mode=mode)
    metrics = run_metric(metric, fake.samples)
    vis_all, ir_all = fake.all_of('vis'), fake.all_of('ir')
    if mode == 'symmetric':  # all VIS queries vs a sampled NIR gallery
        vis2ir = [
            expected_scores(fake, vis_all, fake.single('ir', t), eval_llcm)
            for t in range(4)
        ]
    else:  # DEEN test_mode [2, 1]: sampled NIR rows vs all VIS
        vis2ir = [
            expected_scores(fake, fake.single('ir', t), vis_all, eval_llcm)
            for t in range(4)
        ]
    ir2vis = [
        expected_scores(fake, ir_all, fake.single('vis', t), eval_llcm)
        for t in range(4)
    ]
    check_direction(metrics, 'vis2ir/', vis2ir)
    check_direction(metrics, 'ir2vis/', ir2vis)
    check_direction(metrics, '', vis2ir)  # main = first direction
    trials = metric.last_results['directions']['vis2ir']['trials']
    expected_q = len(vis_all) if mode == 'symmetric' else len(
        fake.folders['ir'])
    assert trials[0]['num_query'] == expected_q
    # The two readings of "VIS->IR" are different computations.
    other = 'deen' if mode == 'symmetric' else 'symmetric'
    m2 = run_metric(
        VIReIDMetric(protocol='llcm', num_trials=4, llcm_vis2ir_mode=other),
        fake.samples)
    assert m2['ir2vis/mAP'] == metrics['ir2vis/mAP']
    assert m2['vis2ir/mAP'] != metrics['vis2ir/mAP']


def test_regdb_all_vs_all_both_directions_single_trial():
    fake = FakeSet(
        3,
        ids=list(range(0, 25)),
        cams=dict(vis=(1, ), ir=(2, )),
        always_cam=None,
        min_files=2,
        max_files=4)
    metric = VIReIDMetric(
        protocol='regdb', num_trials=10, directions=['ir2vis', 'vis2ir'])
    metrics = run_metric(metric, fake.samples)
    vis, ir = fake.all_of('vis'), fake.all_of('ir')
    check_direction(metrics, 'ir2vis/',
                    [expected_scores(fake, ir, vis, eval_regdb)])
    check_direction(metrics, 'vis2ir/',
                    [expected_scores(fake, vis, ir, eval_regdb)])
    check_direction(metrics, '', [expected_scores(fake, ir, vis, eval_regdb)])
    assert metric.last_results['num_trials'] == 1
    assert metrics['vis2ir/mAP_std'] == 0


def test_rerank_and_feat_norm():
    fake = FakeSet(
        4,
        ids=list(range(0, 25)),
        cams=dict(vis=(1, ), ir=(2, )),
        min_files=2,
        max_files=3)
    for s in fake.samples:  # un-normalised features
        s['pred_feat'] = s['pred_feat'] * (1 + s['sample_idx'] % 3)
    cfg = dict(k1=6, k2=3, lambda_value=0.3)
    metric = VIReIDMetric(
        protocol='regdb',
        rerank=True,
        rerank_cfg=cfg,
        feat_norm=True,
        directions='vis2ir')
    metrics = run_metric(metric, fake.samples)

    def dist(qf, gf):
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        return re_ranking(qn, gn, **cfg)

    expected = expected_scores(
        fake, fake.all_of('vis'), fake.all_of('ir'), eval_regdb, dist=dist)
    assert metrics['mAP'] == pytest.approx(expected[1] * 100, abs=1e-9)
    # Without feat_norm the scaled features rank differently.
    plain = run_metric(
        VIReIDMetric(protocol='regdb', directions='vis2ir'), fake.samples)
    assert plain['mAP'] != metrics['mAP']


def test_through_mmengine_evaluator_with_data_elements(sysu):
    # Evaluator.process turns data elements into dicts; evaluate() gathers,
    # scores and adds the prefix.
    evaluator = Evaluator(
        METRICS.build(
            dict(type='VIReIDMetric', protocol='sysu', num_trials=2)))
    for b in range(0, len(sysu.samples), 16):
        batch = []
        for s in sysu.samples[b:b + 16]:
            el = BaseDataElement(
                metainfo=dict(
                    cam_id=s['cam_id'],
                    modality=s['modality'],
                    img_path=s['img_path'],
                    sample_idx=s['sample_idx']))
            el.gt_label = s['gt_label']
            el.pred_feat = s['pred_feat']
            batch.append(el)
        evaluator.process(batch)
    with mock.patch(
            'mmvireid.evaluation.metrics.vireid_metric.MMLogger') as logger:
        metrics = evaluator.evaluate(len(sysu.samples))
    trials = [
        expected_scores(sysu, sysu.all_of('ir'), sysu.single('vis', t),
                        eval_sysu) for t in range(2)
    ]
    cmc, mAP, _ = reference_means(trials)
    assert metrics['reid/Rank-1'] == float(cmc[0]) * 100
    assert metrics['reid/ir2vis/mAP'] == pytest.approx(mAP * 100, abs=1e-12)
    log = logger.get_current_instance.return_value.info.call_args[0][0]
    assert 'sysu ir2vis (2 trials, single-shot gallery):' in log
    assert '| trial | #query | #gallery | Rank-1 |' in log
    assert f'mAP {mAP * 100:.2f} ± ' in log


def test_fp16_storage_stays_close(sysu):
    exact = run_metric(VIReIDMetric(num_trials=2), sysu.samples)
    half = VIReIDMetric(num_trials=2, store_fp16=True)
    half.process(None, sysu.samples[:1])
    assert half.results[0]['feat'].dtype == torch.float16
    half.results.clear()
    approx = run_metric(half, sysu.samples)
    assert approx['mAP'] == pytest.approx(exact['mAP'], abs=1.0)


def test_sample_errors(sysu):
    metric = VIReIDMetric()
    bad = dict(sysu.samples[0])
    del bad['pred_feat']
    with pytest.raises(
            KeyError,
            match=r"data sample '/d/ir/cam\d/\d{4}/"
            r"0001.jpg' has no 'pred_feat'"):
        metric.process(None, [bad])
    with pytest.raises(
            ValueError,
            match=r"has modality 'rgb'; expected one "
            r"of \('vis', 'ir'\)"):
        metric.process(None, [dict(sysu.samples[0], modality='rgb')])
    with pytest.raises(ValueError, match=r"'gt_label' must hold one value"):
        metric.process(None,
                       [dict(sysu.samples[0], gt_label=torch.tensor([1, 2]))])
    metric.results.clear()
    with pytest.raises(
            ValueError,
            match=r"sample_idx 0 occurs more than "
            r"once among the 'ir' samples"):
        run_metric(metric, sysu.samples + sysu.samples[:1])
    metric.results.clear()
    only_ir = [s for s in sysu.samples if s['modality'] == 'ir']
    with pytest.raises(ValueError, match=r"no 'vis' sample was collected"):
        run_metric(metric, only_ir)


def test_evaluation_errors_name_direction_and_trial(sysu):
    # Gallery ids disjoint from query ids: no valid query.
    shifted = [
        dict(s, gt_label=s['gt_label'] + 1000) if s['modality'] == 'vis' else s
        for s in sysu.samples
    ]
    with pytest.raises(
            AssertionError,
            match=r"VIReIDMetric \(protocol='sysu', direction="
            r"'ir2vis', trial=0\): eval_sysu: no valid query"):
        run_metric(VIReIDMetric(), shifted)


def test_config_errors():
    with pytest.raises(ValueError, match='protocol must be one of'):
        VIReIDMetric(protocol='market')
    with pytest.raises(
            ValueError,
            match=r"protocol='sysu' has IR queries "
            r"and a VIS gallery only"):
        VIReIDMetric(protocol='sysu', directions=('vis2ir', ))
    with pytest.raises(
            ValueError,
            match=r"gallery_mode='multi' exists only "
            r"for protocol='sysu'"):
        VIReIDMetric(protocol='llcm', gallery_mode='multi')
    with pytest.raises(ValueError, match='directions must be distinct'):
        VIReIDMetric(protocol='regdb', directions=('vis2ir', 'vis2ir'))
    with pytest.raises(ValueError, match='llcm_vis2ir_mode must be one of'):
        VIReIDMetric(protocol='llcm', llcm_vis2ir_mode='both')
    with pytest.raises(ValueError, match='num_trials must be a positive'):
        VIReIDMetric(num_trials=0)
    with pytest.raises(ValueError, match='max_rank must be a positive int'):
        VIReIDMetric(max_rank=2.5)
    with pytest.raises(ValueError, match=r"unknown rerank_cfg keys \['k3'\]"):
        VIReIDMetric(rerank_cfg=dict(k3=1))
    assert VIReIDMetric(protocol='llcm').directions == ('vis2ir', 'ir2vis')
    assert VIReIDMetric(protocol='sysu').directions == ('ir2vis', )
    assert VIReIDMetric().prefix == 'reid'
