# Copyright (c) mmvireid contributors. All rights reserved.
"""RegDB's 10 splits are 10 trainings: run them and print the paper table.

RegDB is evaluated on 10 random train/test splits (``idx/*_{1..10}.txt``);
each split needs its own model, and papers report the mean over the 10.

Run all splits one after the other (or some of them), then collect::

    python tools/analysis_tools/regdb_trials.py run configs/clip_vireid_regdb.py \\
        --work-dir work_dirs/clip_vireid_regdb [--trials 1 2 3] [-- --amp]
    python tools/analysis_tools/regdb_trials.py collect work_dirs/clip_vireid_regdb

``run`` trains split ``t`` in ``WORK_DIR/trial_t`` (train and test sets of
that split); extra arguments after ``--`` go to ``tools/train.py``. On a
cluster, launch the splits yourself with the same ``--cfg-options``
(printed by ``run --dry-run``) and use ``collect``. ``collect`` reads the last
evaluation logged in each ``trial_t`` (mmengine's ``vis_data/scalars.json``)
and prints, per direction, every split and the mean (± std).
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np

TRIALS = tuple(range(1, 11))
METRICS = ('Rank-1', 'Rank-10', 'Rank-20', 'mAP', 'mINP')
DIRECTIONS = ('vis2ir', 'ir2vis')


def trial_cfg_options(trial: int) -> List[str]:
    """``--cfg-options`` that point every RegDB dataset at split ``trial``."""
    return [
        f'{loader}.dataset.trial={trial}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ]


def run_trials(config: str, work_dir: str, trials, extra: List[str],
               dry_run: bool = False) -> int:
    train_py = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                        'train.py')
    for t in trials:
        cmd = [sys.executable, train_py, config, '--work-dir',
               osp.join(work_dir, f'trial_{t}'), '--cfg-options'
               ] + trial_cfg_options(t) + list(extra)
        print(' '.join(cmd), flush=True)
        if dry_run:
            continue
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f'split {t} failed with exit code {rc}', file=sys.stderr)
            return rc
    return 0


def last_evaluation(trial_dir: str) -> Optional[Dict[str, float]]:
    """The last logged evaluation (``reid/...`` keys) of one split's run."""
    files = sorted(
        glob.glob(osp.join(trial_dir, '*', 'vis_data', 'scalars.json')))
    last = None
    for path in files:  # runs are timestamped: later files are later runs
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                if any(k.startswith('reid/') for k in record):
                    last = record
    return last


def collect(work_dir: str, trials=TRIALS) -> Dict[str, Dict[str, list]]:
    """``{direction: {metric: [value per split]}}`` and the splits found."""
    table = {d: {m: [] for m in METRICS} for d in DIRECTIONS}
    found = []
    for t in trials:
        record = last_evaluation(osp.join(work_dir, f'trial_{t}'))
        if record is None:
            continue
        found.append(t)
        for d in DIRECTIONS:
            for m in METRICS:
                table[d][m].append(float(record.get(f'reid/{d}/{m}',
                                                    np.nan)))
    return dict(table=table, trials=found)


def format_table(result: dict) -> str:
    trials, table = result['trials'], result['table']
    if not trials:
        return 'no evaluated split found'
    lines = []
    for d in DIRECTIONS:
        lines.append(f'RegDB {d} ({len(trials)} of 10 splits)')
        lines.append('split  ' + ''.join(f'{m:>9}' for m in METRICS))
        for i, t in enumerate(trials):
            lines.append(f'{t:>5}  ' +
                         ''.join(f'{table[d][m][i]:9.2f}' for m in METRICS))
        lines.append(' mean  ' + ''.join(
            f'{np.mean(table[d][m]):9.2f}' for m in METRICS))
        lines.append('  std  ' + ''.join(
            f'{np.std(table[d][m]):9.2f}' for m in METRICS))
        lines.append('')
    if len(trials) < 10:
        missing = sorted(set(TRIALS) - set(trials))
        lines.append(f'missing splits: {missing} (papers average all 10)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p_run = sub.add_parser('run', help='train the splits one by one')
    p_run.add_argument('config')
    p_run.add_argument('--work-dir', required=True)
    p_run.add_argument('--trials', type=int, nargs='+', default=TRIALS)
    p_run.add_argument('--dry-run', action='store_true',
                       help='print the commands only')
    p_col = sub.add_parser('collect', help='print the table of the splits')
    p_col.add_argument('work_dir')
    p_col.add_argument('--json', help='also write the table as JSON')
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if '--' in argv:
        i = argv.index('--')
        argv, extra = argv[:i], argv[i + 1:]
    args = parser.parse_args(argv)
    if args.cmd == 'run':
        bad = [t for t in args.trials if t not in TRIALS]
        if bad:
            parser.error(f'RegDB splits are 1..10, got {bad}')
        rc = run_trials(args.config, args.work_dir, args.trials, extra,
                        args.dry_run)
        if rc or args.dry_run:
            return rc
        print(format_table(collect(args.work_dir, args.trials)))
        return 0
    result = collect(args.work_dir)
    print(format_table(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return 0 if result['trials'] else 1


if __name__ == '__main__':
    sys.exit(main())
