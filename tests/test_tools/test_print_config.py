# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/misc/print_config.py: the merged config and the stage summary."""
import importlib.util
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmvireid.engine.schedulers.timm_cosine_lr import timm_cosine_value
from mmvireid.utils.stage_summary import stage_summary

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'print_config.py')
TOY = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('print_config', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _run(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, TOOL, *args],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)


def test_prints_merged_config_and_stage_summary():
    proc = _run(TOY, '--cfg-options', 'train_cfg.stages.1.epochs=2')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the merged config, as mmpretrain prints it (the override applied)
    assert "type='MultiStageTrainLoop'" in out
    assert "name='finetune'" in out and 'epochs=2' in out
    lines = out.splitlines()
    start = lines.index('Stage plan: 2 stage(s), 7 epochs')
    summary = lines[start:]
    # prompt: TimmCosineLR(t_initial=5, warmup_t=1, t_offset=1) from 3e-3;
    # the rate of epoch e (1-based) is timm's value at t = e
    first = timm_cosine_value(3e-3, 1, 5, 1e-5, 1, 3e-4)
    assert math.isclose(first, 2.7145e-3, rel_tol=1e-4)  # as logged
    assert summary[1] == '[1] prompt: epochs 1-5 (5 epochs), validate=False'
    assert summary[2] == '    trains: prompt_learner'
    assert summary[3] == \
        '    optimizer: Adam(lr=0.003, weight_decay=0.0001)'
    assert summary[5] == (f'    lr: {first:.4g} at epoch 1 (first), 1e-05 '
                          f'at epoch 5 (last), peak {first:.4g}')
    assert summary[6].startswith('    feature cache: image features cached '
                                 'at the stage start (mode=shuffled')
    # finetune, shortened to 2 epochs: LinearLR(0.1 -> 1 over epochs 0-2
    # of the stage) goes 0.1, 0.55, 1.0 (mmengine steps it end - begin - 1
    # times); the MultiStepLR at stage epoch 28 never acts
    assert summary[7] == '[2] finetune: epochs 6-7 (2 epochs), validate=True'
    assert summary[8] == '    trains: image_encoder, head'
    assert summary[11] == ('    lr: 3e-05 at epoch 6 (first), 0.000165 at '
                           'epoch 7 (last), peak 0.000165')
    assert summary[12] == \
        '    feature cache: none (images through train_dataloader)'


def test_summary_records_follow_the_plan():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'csdn_toy.py'))
    rows = stage_summary(cfg)
    assert [r['name'] for r in rows] == ['prompt', 'fusion', 'finetune']
    assert [(r['begin'], r['end']) for r in rows] == [(1, 10), (11, 15),
                                                      (16, 35)]
    assert rows[0]['modules'] == ['prompt_learner_vis', 'prompt_learner_ir']
    # CSDN's prompt stage: timm cosine, t_offset=0: epoch 1 is the warm-up
    # start, epoch 10 is t=9 of a 10-epoch cycle
    assert math.isclose(rows[0]['lr_first'], 3e-4)
    assert math.isclose(rows[0]['lr_last'],
                        timm_cosine_value(3e-3, 9, 10, 1e-5, 2, 3e-4))
    assert 'mode=paired' in rows[0]['feature_cache']
    assert rows[2]['feature_cache'].startswith('none')


def test_summary_only_and_errors(tmp_path, capsys):
    tool.main([TOY, '--summary-only'])
    out = capsys.readouterr().out
    assert 'Stage plan: 2 stage(s), 40 epochs' in out
    assert 'train_dataloader = dict(' not in out
    # a misspelt key: one message naming it, exit status 1
    with pytest.raises(SystemExit) as exc:
        tool.main([TOY, '--cfg-options', 'trian_cfg.max_epochs=3'])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'trian_cfg' in err and 'train_cfg' in err
    # a stage plan the loop would refuse is refused here, naming the file
    with pytest.raises(SystemExit):
        tool.main([TOY, '--cfg-options', 'train_cfg.stages.1.epochs=0'])
    err = capsys.readouterr().err
    assert 'clip_vireid_toy.py' in err and 'epochs must be a positive' in err
    plain = tmp_path / 'plain.py'
    plain.write_text("model = dict(type='Foo')\n")
    tool.main([str(plain)])
    out = capsys.readouterr().out
    assert "type='Foo'" in out and 'no train_cfg.stages' in out
