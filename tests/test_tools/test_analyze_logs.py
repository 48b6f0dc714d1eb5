# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/analysis_tools/analyze_logs.py on hand-written logs."""
import importlib.util
import json
import os.path as osp

import mmcv
import numpy as np
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'analyze_logs',
        osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'analyze_logs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()

CONFIG = """
train_cfg = dict(type='MultiStageTrainLoop', val_interval=1, stages=[
    dict(name='prompt', epochs=2, validate=False),
    dict(name='finetune', epochs=2)])
"""


def _write_run(work_dir, stamp, records):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'config.py').write_text(CONFIG)
    (vis /
     'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))


def _train(epoch, it, loss, time, prompt_lr=1e-3, finetune_lr=1e-4):
    return {
        'prompt.lr': prompt_lr,
        'finetune.lr': finetune_lr,
        'loss': loss,
        'time': time,
        'epoch': epoch,
        'iter': it,
        'step': it
    }


@pytest.fixture
def work_dir(tmp_path):
    """Epochs 1-2 (prompt, 2 iterations each) and 3 (finetune) in a first
    run; a resumed second run repeats iteration 6 and adds epoch 4."""
    _write_run(tmp_path, '20240101_000000', [
        _train(1, 1, 9.0, 0.5),
        _train(1, 2, 8.0, 0.7),
        _train(2, 3, 7.0, 0.2),
        _train(2, 4, 6.0, 0.2),
        _train(3, 5, 15.0, 1.0),
        _train(3, 6, 99.0, 1.0),
        {
            'reid/Rank-1': 10.0,
            'reid/mAP': 5.0,
            'step': 3
        },
    ])
    _write_run(tmp_path, '20240101_010000', [
        _train(3, 6, 14.0, 1.0),
        _train(4, 7, 13.0, 2.0, finetune_lr=1e-5),
        _train(4, 8, 12.0, 2.0, finetune_lr=1e-5),
        {
            'reid/Rank-1': 20.0,
            'reid/mAP': 8.0,
            'step': 4
        },
    ])
    return tmp_path


def test_runs_are_merged_and_split_by_stage(work_dir):
    runs = tool.find_runs(str(work_dir))
    assert [osp.basename(osp.dirname(r))
            for r in runs] == ['20240101_000000', '20240101_010000']
    train, val = tool.load_scalars(runs)
    assert [r['iter'] for r in train] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert train[5]['loss'] == 14.0  # the resumed run's value wins
    stages = tool.load_stages(runs)
    assert stages == [
        dict(name='prompt', begin=0, end=2),
        dict(name='finetune', begin=2, end=4)
    ]
    axis, curves = tool.split_by_stage(train, val, stages, 'loss')
    assert axis == 'iter' and list(curves) == ['prompt', 'finetune']
    assert curves['prompt'][0].tolist() == [1, 2, 3, 4]
    assert curves['finetune'][1].tolist() == [15.0, 14.0, 13.0, 12.0]
    # lr = the learning rate of the stage being trained
    _, lr = tool.split_by_stage(train, val, stages, 'lr')
    assert lr['prompt'][1].tolist() == [1e-3] * 4
    assert lr['finetune'][1].tolist() == [1e-4, 1e-4, 1e-5, 1e-5]
    axis, rank1 = tool.split_by_stage(train, val, stages, 'reid/Rank-1')
    assert axis == 'epoch' and list(rank1) == ['finetune']
    assert rank1['finetune'][0].tolist() == [3, 4]
    assert rank1['finetune'][1].tolist() == [10.0, 20.0]


def test_plot_curve_writes_a_png(work_dir, capsys):
    rc = tool.main([
        'plot_curve',
        str(work_dir), '--keys', 'loss', 'lr', 'reid/Rank-1', 'reid/mAP',
        'not_logged'
    ])
    out = capsys.readouterr()
    assert rc == 0
    assert '"not_logged" is not in the logs' in out.err
    png = work_dir / 'curves.png'
    assert f'curves written to {png}' in out.out
    img = mmcv.imread(str(png))
    # 8 x 2.6 inches per subplot at 100 dpi, 4 subplots
    assert img.shape == (1040, 800, 3)
    assert (img != 255).any()


def test_cal_train_time(work_dir, capsys):
    rows = tool.cal_train_time(str(work_dir))
    prompt, finetune = rows
    assert prompt['stage'] == 'prompt' and prompt['epochs'] == 2
    assert prompt['sec_per_iter'] == pytest.approx(np.mean([.5, .7, .2, .2]))
    assert prompt['slowest_epoch'] == 1 and prompt['fastest_epoch'] == 2
    assert prompt['std'] == pytest.approx(np.std([0.6, 0.2]))
    assert finetune['sec_per_iter'] == pytest.approx(1.5)
    assert finetune['slowest_epoch'] == 4
    assert 'finetune' in capsys.readouterr().out


def test_errors(tmp_path, work_dir, capsys):
    assert tool.main(['plot_curve', str(tmp_path / 'nothing')]) == 1
    assert 'neither a log file nor a folder' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert tool.main(['plot_curve', str(tmp_path / 'empty')]) == 1
    assert 'no scalars.json under' in capsys.readouterr().err
    assert tool.main(['plot_curve', str(work_dir), '--keys', 'nope']) == 1
    err = capsys.readouterr().err
    assert "none of the keys ['nope']" in err and "'loss'" in err


@pytest.mark.parametrize(
    'module',
    [
        'projects.example_project.models',  # the repo's example project
        'my_lab.project_models',  # importable nowhere here
    ])
def test_stage_plan_of_a_config_with_custom_imports(tmp_path, monkeypatch,
                                                    capsys, module):
    """The stage plan is read without importing ``custom_imports``: no
    ``PYTHONPATH=.`` needed, and a work dir copied elsewhere still plots."""
    import sys
    # as from another folder, without the repository root on sys.path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', [
        p
        for p in sys.path if p not in ('', '.') and osp.abspath(p) != REPO_ROOT
    ])
    for name in [m for m in sys.modules if m.startswith('projects')]:
        monkeypatch.delitem(sys.modules, name)
    run = tmp_path / 'work' / '20240101_000000' / 'vis_data'
    run.mkdir(parents=True)
    (run /
     'config.py').write_text(f'custom_imports = dict(imports=[{module!r}], '
                             'allow_failed_imports=False)\n' + CONFIG)
    (run /
     'scalars.json').write_text(json.dumps(_train(1, 1, 9.0, 0.5)) + '\n')
    assert tool.load_stages([str(run)]) == [
        dict(name='prompt', begin=0, end=2),
        dict(name='finetune', begin=2, end=4)
    ]
    assert 'cannot read the stage plan' not in capsys.readouterr().err
    assert not any(m.startswith(module.split('.')[0]) for m in sys.modules)
