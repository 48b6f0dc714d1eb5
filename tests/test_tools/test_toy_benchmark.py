# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/analysis_tools/toy_benchmark.py: epoch losses, last evaluation,
mean ± std over seeds, finished runs only."""
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
from toy_utils import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
import toy_benchmark as tb  # noqa: E402

CONFIG = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')  # prompt: 5


def _write_log(out_dir, rank1, maps, prompt_losses):
    """A scalars.json as mmengine writes it: per-iteration train records
    (2 per epoch) and evaluations; the last one is the run's result."""
    folder = osp.join(out_dir, '20261206_000000', 'vis_data')
    os.makedirs(folder)
    lines = []
    for epoch, loss in enumerate(prompt_losses, 1):
        for i in range(2):
            lines.append(dict(loss=loss + (0.5 if i else -0.5), epoch=epoch,
                              iter=2 * epoch + i, step=2 * epoch + i))
    for step, (r1, m) in enumerate(zip(rank1, maps)):
        lines.append({'reid/Rank-1': r1, 'reid/mAP': m, 'step': 10 + step})
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        f.write('\n'.join(json.dumps(x) for x in lines) + '\n')


def test_parse_logs_epoch_means_and_last_evaluation(tmp_path):
    _write_log(str(tmp_path), [30.0, 20.0], [40.0, 35.0],
               [8.0, 7.0, 6.0, 5.0, 4.0])
    run = tb.parse_logs(str(tmp_path))
    assert run['epoch_loss'] == {1: 8.0, 2: 7.0, 3: 6.0, 4: 5.0, 5: 4.0}
    # the last evaluation, not the best one
    assert run['metrics'] == {'Rank-1': 20.0, 'mAP': 35.0}
    assert tb.parse_logs(str(tmp_path / 'nothing')) is None


def test_collect_mean_std_over_seeds(tmp_path, capsys):
    work = str(tmp_path / 'work')
    data = tmp_path / 'toy'
    data.mkdir()
    for seed, r1 in enumerate([10.0, 20.0, 30.0]):
        out = tb.run_dir(work, CONFIG, 'tune', seed)
        _write_log(out, [99.0, r1], [0.0, r1 + 5], [8, 7, 6, 5, 2.0 * seed])
        with open(osp.join(out, tb.RESULT_FILE), 'w') as f:
            json.dump(tb.parse_logs(out), f)
    # a run killed half-way (no result file) is not collected
    _write_log(tb.run_dir(work, CONFIG, 'tune', 3), [50.0], [50.0], [1.0])
    rows = tb.main([
        CONFIG, '--data', f'tune={data}', '--seeds', '0', '1', '2', '3',
        '--work-dir', work, '--collect-only', '--markdown'
    ])
    (row, ) = rows
    assert row['seeds'] == 3
    assert row['Rank-1'][:2] == pytest.approx((20.0, np.std([10, 20, 30])))
    assert row['mAP'][0] == pytest.approx(25.0)
    # first and last epoch of the prompt stage (5 epochs in the config)
    assert row['prompt_loss'] == pytest.approx((8.0, 2.0))
    out = capsys.readouterr().out
    assert '| clip_vireid_toy | tune | 3 | 20.00 ± 8.16 | 25.00 ± 8.16 |' in out
    assert '8.000 → 2.000 (25%)' in out


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match='NAME=ROOT'):
        tb.main([CONFIG, '--data', 'data/toy_sysu'])
    with pytest.raises(SystemExit, match='is not a folder'):
        tb.main([CONFIG, '--data', f'tune={tmp_path}/missing'])
    with pytest.raises(SystemExit, match='config not found'):
        tb.main(['nope.py', '--data', f'tune={tmp_path}'])
