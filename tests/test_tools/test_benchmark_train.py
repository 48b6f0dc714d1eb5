# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/analysis_tools/benchmark_train.py on CPU with the toy configs.

No timing is asserted: the tests check that every stage gets both rows, the
ratio and the loader row, and that the two variants really differ in what
the benchmark says they differ in.
"""
import json
import os.path as osp
import sys
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from mmvireid.utils.tool_utils import UserInputError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import benchmark_train  # noqa: E402

sys.path.pop(0)


def _run(config, capsys, *extra):
    benchmark_train.main([
        osp.join(REPO, config), '--device', 'cpu', '--warmup', '0',
        '--iters', '1', '--loader-batches', '1', '--batch-size', '16',
        *extra
    ])
    return capsys.readouterr().out


def _rows(out):
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[1] in ('mmvireid', 'reference-style'):
            rows[(parts[0], parts[1])] = parts
    return rows


def test_every_stage_has_both_rows_ratio_and_loader(toy_sysu_root, tmp_path,
                                                    capsys):
    out_file = tmp_path / 'bench.json'
    out = _run('configs/csdn_toy.py', capsys, '--out', str(out_file),
               '--markdown', '--cfg-options',
               f'train_dataloader.dataset.data_root={toy_sysu_root}')
    stages = ('prompt', 'fusion', 'finetune')
    rows = _rows(out)
    assert set(rows) == {(s, v) for s in stages
                         for v in ('mmvireid', 'reference-style')}
    # prompt stages step on features (2 x 32 pairs, 64 features), the
    # fine-tuning stage on the 16-image batch
    assert rows[('prompt', 'mmvireid')][3] == '64'
    assert rows[('finetune', 'reference-style')][3] == '16'
    for stage in stages:
        assert f'ratio {stage}: ' in out
    assert 'loader: ' in out and 'img/s' in out
    assert 'full recipe (training only, no evaluation)' in out
    # the markdown rows of docs/en/benchmarks.md: one per stage
    md = [ln for ln in out.splitlines() if ln.startswith('| csdn_toy.py |')]
    assert [ln.split('|')[2].split()[0] for ln in md] == list(stages)

    result = json.loads(out_file.read_text())
    assert [r['stage'] for r in result['steps']] == list(stages) * 2
    for stage in stages:
        mine = next(r for r in result['steps']
                    if r['stage'] == stage and r['variant'] == 'mmvireid')
        ref = next(r for r in result['steps'] if r['stage'] == stage
                   and r['variant'] == 'reference-style')
        assert result['ratios'][stage] == pytest.approx(
            mine['items_per_s'] / ref['items_per_s'])
        assert mine['last_losses'] and ref['last_losses']
    # the cache is built once per prompt stage: its speed is measured
    assert 'extract_img_per_s' in result['steps'][0]
    assert result['loader']['real_data'] is True
    # CSDN caches one identity-sampler draw; the estimate uses its size
    epoch = result['estimate']['stages']['prompt']['mmvireid']['epoch_min']
    assert epoch > 0


def test_generates_toy_data_when_the_dataset_is_missing(tmp_path, capsys):
    out = _run('configs/clip_vireid_toy.py', capsys, '--toy-img-size', '32',
               '16', '--cfg-options',
               f'train_dataloader.dataset.data_root={tmp_path / "absent"}')
    assert set(_rows(out)) == {(s, v) for s in ('prompt', 'finetune')
                               for v in ('mmvireid', 'reference-style')}
    assert 'generated toy data (32x16 JPEGs' in out
    assert 'not estimated' in out


def test_loader_only(toy_sysu_root, capsys):
    out = _run('configs/clip_vireid_toy.py', capsys, '--loader-only',
               '--cfg-options',
               f'train_dataloader.dataset.data_root={toy_sysu_root}')
    assert _rows(out) == {}
    loader = [ln for ln in out.splitlines() if ln.startswith('loader: ')]
    assert len(loader) == 1 and '(0 workers, batch 16;' in loader[0]


def test_variant_configs():
    cfg = Config.fromfile(osp.join(REPO, 'configs/csdn_sysu.py'))
    # the AMP variant goes through tools' apply_amp, which wants CUDA; the
    # configs are only edited here, never built
    with mock.patch.object(torch.cuda, 'is_available', return_value=True):
        ref = benchmark_train.variant_cfg(cfg, reference=True, amp='bf16')
        fast = benchmark_train.variant_cfg(cfg, reference=False, amp='bf16')
        fp16 = benchmark_train.variant_cfg(cfg, reference=False, amp='fp16')
    assert ref.model.image_encoder.pretrained is None
    assert fast.model.text_encoder.pretrained is None
    assert ref.model.image_encoder.get('channels_last', False) is False
    assert ref.model.prompt_learner.truncate_after_eot is False
    assert ref.model.text_encoder.truncate_after_eot is False
    assert 'truncate_after_eot' not in fast.model.prompt_learner
    assert fast.model.image_encoder.channels_last is True
    assert fast.model.image_encoder.get('channels_last') == \
        cfg.model.image_encoder.get('channels_last')
    for stage in ('prompt', 'fusion', 'finetune'):
        assert ref.optim_wrapper[stage].type == 'OptimWrapper'
        assert ref.optim_wrapper[stage].optimizer.fused is False
        assert fast.optim_wrapper[stage].type == 'AmpOptimWrapper'
        assert fast.optim_wrapper[stage].dtype == 'bfloat16'
        # bf16 needs no loss scaling; fp16 scales dynamically
        assert fast.optim_wrapper[stage].loss_scale == dict(enabled=False)
        assert fp16.optim_wrapper[stage].loss_scale == 'dynamic'
    # the input config is left as it was
    assert cfg.model.image_encoder.pretrained == 'openai'


def test_clear_errors():
    with pytest.raises(UserInputError, match='needs a CUDA device'):
        benchmark_train.main([
            osp.join(REPO, 'configs/clip_vireid_toy.py'), '--device', 'cpu',
            '--amp', 'bf16'
        ])
    with pytest.raises(UserInputError, match=r"--stages \['warmup'\]"):
        benchmark_train.main([
            osp.join(REPO, 'configs/clip_vireid_toy.py'), '--device', 'cpu',
            '--stages', 'warmup'
        ])
    with pytest.raises(UserInputError, match='not a multiple of 2 x'):
        benchmark_train.main([
            osp.join(REPO, 'configs/clip_vireid_toy.py'), '--device', 'cpu',
            '--batch-size', '12', '--skip-loader'
        ])


def test_cached_batch_comes_from_build_feature_cache(toy_sysu_root, capsys,
                                                     monkeypatch):
    """The mmvireid row enters stages with enter_stage and steps on the
    first batch of the loader build_feature_cache makes in the stage's
    mode: CSDN's prompt stage caches pairs, [32 visible; 32 infrared]."""
    calls, batches = [], []
    build = benchmark_train.build_feature_cache
    enter = benchmark_train.enter_stage

    def recording_build(model, cache_cfg, *args, **kwargs):
        loader = build(model, cache_cfg, *args, **kwargs)
        calls.append((kwargs['stage'], cache_cfg['mode'],
                      type(loader.batch_sampler).__name__))
        batches.append(next(iter(loader)))
        return loader

    entered = []
    monkeypatch.setattr(benchmark_train, 'build_feature_cache',
                        recording_build)
    monkeypatch.setattr(
        benchmark_train, 'enter_stage', lambda model, name, data:
        (entered.append(
            (name, model.current_stage)), enter(model, name, data)))
    _run('configs/csdn_toy.py', capsys, '--stages', 'prompt',
         '--skip-baseline', '--skip-loader', '--cfg-options',
         f'train_dataloader.dataset.data_root={toy_sysu_root}')
    assert entered == [('prompt', None)]
    assert calls == [('prompt', 'paired', 'PairedCacheBatchSampler')]
    samples = batches[0]['data_samples']
    assert batches[0]['inputs'].shape[0] == 64
    assert samples['modality'].tolist() == [0] * 32 + [1] * 32
    assert torch.equal(samples['gt_label'][:32], samples['gt_label'][32:])
