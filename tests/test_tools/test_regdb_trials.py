# Copyright (c) mmvireid contributors. All rights reserved.
import json
import os
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'tools', 'analysis_tools'))
import regdb_trials  # noqa: E402

sys.path.pop(0)


def _log(work_dir, trial, records, stamp='20260101_000000'):
    d = osp.join(work_dir, f'trial_{trial}', stamp, 'vis_data')
    os.makedirs(d, exist_ok=True)
    with open(osp.join(d, 'scalars.json'), 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def _eval(v2i, i2v, step):
    rec = dict(step=step)
    for d, base in (('vis2ir', v2i), ('ir2vis', i2v)):
        for k, m in enumerate(regdb_trials.METRICS):
            rec[f'reid/{d}/{m}'] = base + k
    return rec


def test_collect_takes_each_split_last_evaluation(tmp_path):
    wd = str(tmp_path)
    # split 1: two evaluations and a train line; the last one counts
    _log(wd, 1, [_eval(10, 20, 5), dict(loss=1.0, step=6),
                 _eval(50, 60, 10)])
    # split 2: an older and a newer run (timestamps); the newer one counts
    _log(wd, 2, [_eval(1, 2, 10)], stamp='20260101_000000')
    _log(wd, 2, [_eval(70, 80, 10)], stamp='20260102_000000')
    result = regdb_trials.collect(wd)
    assert result['trials'] == [1, 2]
    assert result['table']['vis2ir']['Rank-1'] == [50, 70]
    assert result['table']['ir2vis']['mINP'] == [64, 84]
    text = regdb_trials.format_table(result)
    # mean of 50 and 70 for vis2ir Rank-1; std 10
    mean_line = [ln for ln in text.splitlines() if ln.startswith(' mean')][0]
    assert mean_line.split()[1] == '60.00'
    std_line = [ln for ln in text.splitlines() if ln.startswith('  std')][0]
    assert std_line.split()[1] == '10.00'
    assert 'missing splits: [3, 4, 5, 6, 7, 8, 9, 10]' in text


def test_run_dry_run_prints_per_split_commands(tmp_path, capsys):
    rc = regdb_trials.main([
        'run', 'configs/clip_vireid_regdb.py', '--work-dir',
        str(tmp_path), '--trials', '3', '7', '--dry-run', '--', '--amp'
    ])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert 'trial_3' in lines[0] and 'train_dataloader.dataset.trial=3' in \
        lines[0] and 'test_dataloader.dataset.trial=3' in lines[0]
    assert lines[1].endswith('--amp') and 'trial_7' in lines[1]


def test_bad_split_and_empty_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        regdb_trials.main(['run', 'c.py', '--work-dir', str(tmp_path),
                           '--trials', '11'])
    assert regdb_trials.main(['collect', str(tmp_path)]) == 1
    assert 'no evaluated split found' in capsys.readouterr().out
