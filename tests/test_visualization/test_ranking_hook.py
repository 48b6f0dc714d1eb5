# Copyright (c) mmvireid contributors. All rights reserved.
"""RankingVisualizationHook and ``tools/test.py --show-dir``."""
import json
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import mmcv
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from mmvireid.evaluation import VIReIDMetric
from mmvireid.visualization import (RANKINGS_HEADER, RankingVisualizationHook,
                                    VIReIDVisualizer,
                                    enable_ranking_visualization)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _toy_records(root):
    """Every SYSU test image of the toy set, with a feature that is the
    one-hot of its identity (so every query's right matches score 1)."""
    from mmvireid.datasets import SYSUMM01Dataset
    ds = SYSUMM01Dataset(root, split='test', pipeline=[], serialize_data=False)
    items = ds.get_data_list()
    ids = sorted({d['gt_label'] for d in items})
    samples = []
    for idx, d in enumerate(items):
        s = DataSample(
            metainfo=dict(
                img_path=d['img_path'],
                modality=d['modality'],
                cam_id=d['cam_id'],
                sample_idx=idx))
        s.set_gt_label(d['gt_label'])
        feat = torch.zeros(len(ids))
        feat[ids.index(d['gt_label'])] = 1.0
        s.set_field(feat, 'pred_feat')
        samples.append(s)
    return samples


def test_hook_draws_rankings(toy_sysu_root, tmp_path):
    samples = _toy_records(toy_sysu_root)
    runner = SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=list(range(len(samples)))),
        test_evaluator=SimpleNamespace(metrics=[VIReIDMetric('sysu')]),
        log_dir=str(tmp_path / 'log'),
        visualizer=None)
    hook = RankingVisualizationHook(
        out_dir=str(tmp_path / 'show'),
        topk=4,
        num_queries=5,
        visualizer=dict(tile_size=(64, 32)))
    hook.before_test_epoch(runner)
    # batches in reverse order: the hook must restore dataset order
    for start in reversed(range(0, len(samples), 50)):
        hook.after_test_iter(runner, 0, outputs=samples[start:start + 50])
    hook.after_test_epoch(runner)

    files = sorted(os.listdir(tmp_path / 'show'))
    pngs = [f for f in files if f.endswith('.png')]
    assert len(pngs) == 5 and 'rankings.json' in files
    summary = json.load(open(tmp_path / 'show' / 'rankings.json'))
    # the inferencer's file: same writer, same header and record keys
    assert list(summary) == list(RANKINGS_HEADER) + ['rankings']
    assert summary['source'].startswith('tools/test.py --show-dir')
    assert summary['rerank'] is None and summary['topk'] == 4
    assert (summary['protocol'], summary['direction']) == ('sysu', 'ir2vis')
    queries = [s for s in samples if s.modality == 'ir']
    assert summary['num_query'] == len(queries)
    # evenly spread queries: first and last of the query list included
    q_idx = [r['query']['sample_idx'] for r in summary['rankings']]
    assert q_idx[0] == queries[0].sample_idx
    assert q_idx[-1] == queries[-1].sample_idx
    lay = VIReIDVisualizer(name='hook_layout', tile_size=(64, 32)).layout(4)
    for rec in summary['rankings']:
        q = rec['query']
        assert q['modality'] == 'ir'
        matches = rec['matches']
        assert len(matches) == 4
        assert all(m['modality'] == 'vis' for m in matches)
        if q['cam_id'] == 3:  # the SYSU filter hides camera 2
            assert all(m['cam_id'] != 2 for m in matches)
        # one-hot features: the gallery images of the query's identity
        # score 1 and come first, the others 0
        n_right = sum(m['pid'] == q['pid'] for m in matches)
        assert n_right >= 1
        assert rec['first_correct_rank'] == 1
        assert list(rec) == ['query', 'matches', 'first_correct_rank',
                             'image']
        for m in matches[:n_right]:
            assert m['correct'] and m['score'] == pytest.approx(1.0)
        for m in matches[n_right:]:
            assert not m['correct'] and m['score'] == pytest.approx(0.0)
        img = mmcv.imread(rec['image'], channel_order='rgb')
        assert img.shape == (lay.height, lay.width, 3)
        y = lay.gap + 1
        colours = [tuple(img[y, f[0] + 1]) for f in lay.gallery_frames]
        assert colours == [(0, 170, 0) if m['correct'] else (220, 20, 20)
                           for m in matches]


def test_hook_follows_the_metric_rerank(toy_sysu_root, tmp_path):
    samples = _toy_records(toy_sysu_root)
    runner = SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=list(range(len(samples)))),
        test_evaluator=SimpleNamespace(metrics=[
            VIReIDMetric('sysu', rerank=True, rerank_cfg=dict(k1=6, k2=3))
        ]),
        log_dir=str(tmp_path / 'log'),
        visualizer=None)
    hook = RankingVisualizationHook(
        out_dir=str(tmp_path / 'show'), topk=3, num_queries=2,
        weights='ckpt.pth', visualizer=dict(tile_size=(32, 16)))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, outputs=samples)
    hook.after_test_epoch(runner)
    summary = json.load(open(tmp_path / 'show' / 'rankings.json'))
    assert summary['rerank'] == dict(k1=6, k2=3)
    assert summary['weights'] == 'ckpt.pth'
    for rec in summary['rankings']:
        assert rec['first_correct_rank'] == next(
            (m['rank'] for m in rec['matches'] if m['correct']), None)


def test_enable_ranking_visualization_updates_config():
    cfg = Config(dict(custom_hooks=[dict(type='StageSwitchHook')]))
    enable_ranking_visualization(cfg, 'out', topk=3, num_queries=2)
    enable_ranking_visualization(cfg, 'out2', topk=5, num_queries=2)
    assert cfg.custom_hooks == [
        dict(type='StageSwitchHook'),
        dict(
            type='RankingVisualizationHook',
            out_dir='out2',
            topk=5,
            num_queries=2)
    ]
    assert cfg.custom_imports['imports'] == ['mmvireid.visualization']
    with pytest.raises(ValueError, match='topk and num_queries'):
        RankingVisualizationHook(topk=0)


def test_test_py_show_dir(toy_sysu_root, tmp_path):
    """The user command: tools/test.py CONFIG CKPT --show-dir DIR."""
    from mmvireid.registry import MODELS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg_file = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmvireid'):
        model = MODELS.build(Config.fromfile(cfg_file).model)
    ckpt = str(tmp_path / 'toy.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), ckpt)
    show = tmp_path / 'show'
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'test.py'), cfg_file, ckpt, '--work-dir',
        str(tmp_path / 'wd'), '--show-dir',
        str(show), '--show-topk', '3', '--show-num', '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_sysu_root}',
        f'val_dataloader.dataset.data_root={toy_sysu_root}',
        f'test_dataloader.dataset.data_root={toy_sysu_root}',
        'test_evaluator.num_trials=1'
    ]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        cmd,
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted(f for f in os.listdir(show) if f.endswith('.png'))
    assert len(pngs) == 2
    lay = VIReIDVisualizer(name='show_dir_layout').layout(3)
    for png in pngs:
        img = mmcv.imread(str(show / png))
        assert img.shape == (lay.height, lay.width, 3)
    assert 'ranking lists written to' in proc.stdout + proc.stderr


def test_hook_names_missing_sample_fields():
    hook = RankingVisualizationHook()
    bare = DataSample()
    with pytest.raises(KeyError, match='no "pred_feat"'):
        hook.after_test_iter(None, 0, outputs=[bare])
    bare.set_field(torch.ones(4), 'pred_feat')
    bare.set_field(3, 'cam_id', field_type='metainfo')
    expected = r"lack \['gt_label', 'modality', 'sample_idx', 'img_path'\]"
    with pytest.raises(KeyError, match=expected):
        hook.after_test_iter(None, 0, outputs=[bare])


def test_hook_takes_the_metric_settings_of_its_protocol():
    deen = VIReIDMetric(
        'llcm', directions=('vis2ir', ), llcm_vis2ir_mode='deen')
    runner = SimpleNamespace(
        test_evaluator=SimpleNamespace(metrics=[deen]),
        test_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(dataset_name='llcm'))))
    settings = RankingVisualizationHook()._protocol_settings(runner)
    assert settings == dict(
        protocol='llcm',
        direction='vis2ir',
        gallery_mode='single',
        llcm_vis2ir_mode='deen')
    # A hook told another protocol does not take that metric's settings.
    settings = RankingVisualizationHook(
        protocol='sysu', gallery_mode='multi')._protocol_settings(runner)
    assert settings == dict(
        protocol='sysu',
        direction='ir2vis',
        gallery_mode='multi',
        llcm_vis2ir_mode='symmetric')
    # Without a metric, the dataset names the protocol.
    runner.test_evaluator = None
    settings = RankingVisualizationHook()._protocol_settings(runner)
    assert (settings['protocol'], settings['direction']) == ('llcm', 'vis2ir')
    with pytest.raises(ValueError, match='protocol must be one of'):
        RankingVisualizationHook(protocol='market')
