# Copyright (c) mmvireid contributors. All rights reserved.
"""``tools/analysis_tools/gpu_check.sh``: every part, tiny, on the CPU; a
part that fails or runs past its limit is recorded and the others run."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from toy_utils import REPO_ROOT

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'gpu_check.sh')


def _load_gpu_check():
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'gpu_check.py')
    spec = importlib.util.spec_from_file_location('gpu_check', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_gpu_check()


def _positive(value):
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope='module')
def small_report(tmp_path_factory):
    """One ``gpu_check.sh --device cpu --small`` run (about two minutes on
    two cores)."""
    tmp = tmp_path_factory.mktemp('gpu_check')
    out = tmp / 'out'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        'bash', SCRIPT, '--device', 'cpu', '--small', '--out',
        str(out), '--data-dir',
        str(tmp / 'data')
    ],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / 'gpu_check.json') as f:
        report = json.load(f)
    with open(out / 'gpu_check.md') as f:
        markdown = f.read()
    return report, markdown, proc.stdout


def test_every_part_runs_and_gives_numbers(small_report):
    report, _, _ = small_report
    parts = report['parts']
    assert list(parts) == list(gpu_check.PARTS)
    for name, part in parts.items():
        assert part['status'] == 'ok', (name, part['error'])
        assert part['error'] is None
        assert _positive(part['seconds']) and part['result'], name
    assert report['meta']['small'] and report['meta']['device'] == 'cpu'

    stages = dict(
        csdn=['prompt', 'fusion', 'finetune'], eees=['prompt', 'finetune'])
    for name, (method, precision) in gpu_check.BENCH_PARTS.items():
        res = parts[name]['result']
        assert res['config'] == f'configs/{method}_toy.py'
        # no AMP on a CPU: the bf16 parts say that they ran in fp32
        assert res['precision'] == 'fp32'
        assert ('note' in res) == (precision == 'bf16')
        ours = [r for r in res['steps'] if r['variant'] == 'mmvireid']
        assert [r['stage'] for r in ours] == stages[method]
        assert all(_positive(r['items_per_s']) for r in ours)
        refs = [r for r in res['steps'] if r['variant'] != 'mmvireid']
        if precision == 'bf16':
            # the reference-style rows, the ratios, the loader, the recipe
            assert [r['stage'] for r in refs] == stages[method]
            assert all(_positive(v) for v in res['ratios'].values())
            assert _positive(res['loader']['items_per_s'])
            assert all(
                _positive(v) for v in res['estimate']['total_min'].values())
            assert _positive(ours[0]['extract_img_per_s'])
        else:
            assert refs == [] and res['loader'] is None

    ev = parts['eval_sysu']['result']
    assert _positive(ev['img_per_s']) and ev['items'] > 0
    assert set(ev['metrics']) == {'single', 'multi'}
    for metric in ev['metrics'].values():
        assert metric['num_trials'] == 10 and _positive(metric['seconds'])
        assert 0 <= metric['directions']['ir2vis']['rank1'] <= 100

    toy = parts['toy_amp']['result']
    assert [(r['precision'], r['seed']) for r in toy['runs']] == \
        [('bf16', 0), ('fp32', 0)]
    assert all(0 <= r['rank1'] <= 100 for r in toy['runs'])
    assert 'bf16 needs CUDA' in toy['note']

    llava = parts['llava']['result']
    assert _positive(llava['img_per_s'])
    assert _positive(llava['sysu_train_hours'])
    assert llava['batches']['4']['texts'] == 4


def test_markdown_rows_are_printed_and_written(small_report):
    _, markdown, stdout = small_report
    assert markdown.strip() in stdout
    assert '| csdn_toy.py | prompt (features) | fp32 | 64 |' in markdown
    assert '| eees_toy.py | finetune (images) | fp32 | 32 |' in markdown
    assert 'csdn_toy.py: full recipe, training only (min)' in markdown
    assert 'AMP (bf16) vs fp32 toy Rank-1' in markdown
    assert 'descriptions, tiny LLaVA layout' in markdown
    assert 'metric, 10 trials: single' in markdown


def test_a_failing_or_slow_part_is_recorded(tmp_path):
    """A part that raises keeps its log's tail as the error; one past its
    limit is stopped (with its children) and says so."""
    args = gpu_check.parse_args([
        '--device', 'cpu', '--small', '--out',
        str(tmp_path / 'out'), '--data-dir',
        str(tmp_path / 'missing')
    ])
    ctx = gpu_check.Context(args)
    os.makedirs(ctx.parts_dir)
    forwarded = [
        '--device', 'cpu', '--small', '--out', ctx.out, '--data-dir',
        ctx.data_dir
    ]
    # no data: the evaluation cannot find the dataset
    failed = gpu_check.launch_part('eval_sysu', ctx, 120, forwarded)
    assert failed['status'] == 'error' and failed['result'] is None
    assert 'Traceback' in failed['error']
    slow = gpu_check.launch_part('setup', ctx, 1, forwarded)
    assert slow['status'] == 'timeout'
    assert slow['error'] == 'stopped after its limit of 1 s'
    assert slow['seconds'] < 30


def test_random_weights_without_downloads():
    cfg = dict(
        image_encoder=dict(pretrained='openai', arch='RN50'),
        text_encoder=dict(pretrained='openai'),
        heads=[dict(pretrained='x.pth'),
               dict(type='BNNeck')])
    gpu_check._no_pretrained(cfg)
    assert cfg['image_encoder'] == dict(pretrained=None, arch='RN50')
    assert cfg['text_encoder']['pretrained'] is None
    assert cfg['heads'][0]['pretrained'] is None
