# Copyright (c) mmvireid contributors. All rights reserved.
"""Train toy recipes over seeds and toy datasets; print mean ± std.

A toy result is only worth reporting over several seeds and on data the
recipe was not tuned on. This tool trains every ``CONFIG`` on every
``--data`` root with every ``--seed`` (``--jobs`` trainings at a time, one
CPU thread each), then prints one row per (config, data) with the mean ±
std over seeds of the *last* evaluation's Rank-1 and mAP (not the best one:
picking the best epoch on the test set would flatter the recipe), and the
mean loss of the first and last epoch of the first (prompt) stage::

    python tools/analysis_tools/toy_benchmark.py \\
        configs/clip_vireid_toy.py configs/eees_toy.py \\
        --data tune=data/toy_sysu held_out=data/toy_sysu_alt \\
        --seeds 0 1 2 --work-dir work_dirs/toy_benchmark --markdown

Each training lands in ``WORK_DIR/<config>/<data>/seed_<s>`` and logs every
iteration's loss (``logger.interval=1``, ``window_size=1``), so epoch means
are exact. A run that already finished there is collected, not trained
again (delete its folder to retrain); ``--collect-only`` trains nothing.
``--cfg-options`` after the configs apply to every run.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

import numpy as np
# beside this file (tools/ is not a package): the scalars.json reader
from analyze_logs import find_runs, load_scalars

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRICS = ('Rank-1', 'mAP')


def run_dir(work_dir: str, config: str, data_name: str, seed: int) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, data_name, f'seed_{seed}')


def train_command(config: str, data_root: str, seed: int, out_dir: str,
                  extra: Sequence[str] = ()) -> List[str]:
    """The ``tools/train.py`` command of one run."""
    root = data_root.rstrip('/') + '/'
    return [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        out_dir, '--cfg-options'
    ] + [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ] + [
        f'randomness.seed={seed}', 'default_hooks.logger.interval=1',
        'log_processor.window_size=1'
    ] + list(extra)


#: Written into a run folder when its training exited 0.
RESULT_FILE = 'toy_result.json'


def read_run(out_dir: str) -> Optional[dict]:
    """The result of a finished run (``toy_result.json``), or None: a run
    killed half-way is trained again, never collected."""
    path = osp.join(out_dir, RESULT_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        result = json.load(f)
    result['epoch_loss'] = {int(k): v for k, v in result['epoch_loss'].items()}
    return result


def parse_logs(out_dir: str) -> Optional[dict]:
    """Epoch-mean losses and the last evaluation of a run.

    Reads the ``scalars.json`` logs under ``out_dir`` with
    ``analyze_logs.py``'s reader (runs merged in time order).

    Returns:
        dict | None: ``epoch_loss`` ({epoch: mean loss}), ``metrics`` (the
        last logged ``reid/*`` values, keys without the prefix) and
        ``last_epoch``; None when no evaluation was logged.
    """
    try:
        train, val = load_scalars(find_runs(out_dir))
    except FileNotFoundError:
        return None
    evaluations = [rec for rec in val if 'reid/Rank-1' in rec]
    if not evaluations:
        return None
    losses: Dict[int, List[float]] = {}
    for rec in train:
        if 'loss' in rec:
            losses.setdefault(int(rec['epoch']), []).append(rec['loss'])
    last = evaluations[-1]
    return dict(
        epoch_loss={e: float(np.mean(v))
                    for e, v in sorted(losses.items())},
        metrics={
            k[len('reid/'):]: v
            for k, v in last.items() if k.startswith('reid/')
        },
        last_epoch=last.get('step'))


def first_stage_epochs(config: str) -> int:
    from mmengine.config import Config
    return int(Config.fromfile(config).train_cfg.stages[0]['epochs'])


def summarize(runs: Dict[tuple, dict], configs: Sequence[str],
              data_names: Sequence[str]) -> List[dict]:
    """One row per (config, data): mean ± std over seeds."""
    rows = []
    for config in configs:
        prompt_epochs = first_stage_epochs(config)
        for data_name in data_names:
            found = [
                r for (c, d, _), r in sorted(runs.items())
                if c == config and d == data_name and r is not None
            ]
            if not found:
                continue
            row = dict(
                config=osp.splitext(osp.basename(config))[0],
                data=data_name,
                seeds=len(found))
            for metric in METRICS:
                values = [r['metrics'][metric] for r in found]
                row[metric] = (float(np.mean(values)), float(np.std(values)),
                               values)
            first = [r['epoch_loss'].get(1) for r in found]
            last = [r['epoch_loss'].get(prompt_epochs) for r in found]
            if all(v is not None for v in first + last):
                row['prompt_loss'] = (float(np.mean(first)),
                                      float(np.mean(last)))
            rows.append(row)
    return rows


def format_rows(rows: List[dict], markdown: bool) -> str:
    head = ('| recipe | data | seeds | Rank-1 | mAP | prompt loss '
            'first → last epoch |')
    lines = [head, '|---|---|---|---|---|---|'] if markdown else []
    for row in rows:
        cells = [
            row['config'], row['data'],
            str(row['seeds']),
            '{:.2f} ± {:.2f}'.format(*row['Rank-1'][:2]),
            '{:.2f} ± {:.2f}'.format(*row['mAP'][:2]),
            ('{:.3f} → {:.3f} ({:.0%})'.format(
                row['prompt_loss'][0], row['prompt_loss'][1],
                row['prompt_loss'][1] / row['prompt_loss'][0])
             if 'prompt_loss' in row else '-')
        ]
        if markdown:
            lines.append('| ' + ' | '.join(cells) + ' |')
        else:
            lines.append('  '.join(cells) + '   (Rank-1 per seed: ' +
                         ', '.join(f'{v:.2f}' for v in row['Rank-1'][2]) +
                         ')')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train toy recipes over seeds and toy datasets and '
        'print mean ± std of the last Rank-1 / mAP.')
    parser.add_argument('configs', nargs='+')
    parser.add_argument(
        '--data',
        nargs='+',
        required=True,
        metavar='NAME=ROOT',
        help='toy data roots, e.g. tune=data/toy_sysu '
        'held_out=data/toy_sysu_alt')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/toy_benchmark')
    parser.add_argument('--jobs', type=int, default=2,
                        help='trainings at a time (one thread each)')
    parser.add_argument('--collect-only', action='store_true')
    parser.add_argument('--markdown', action='store_true')
    parser.add_argument('--out', help='write the rows as JSON')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides for every run')
    return parser.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    data = {}
    for item in args.data:
        name, sep, root = item.partition('=')
        if not sep or not name or not root:
            raise SystemExit(f'--data takes NAME=ROOT, got {item!r}')
        if not osp.isdir(root):
            raise SystemExit(f'--data {name}: {root} is not a folder; make '
                             'it with tools/dataset_converters/'
                             'make_toy_vireid.py')
        data[name] = root
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'config not found: {config}')

    jobs = []
    for config in args.configs:
        for name, root in data.items():
            for seed in args.seeds:
                out = run_dir(args.work_dir, config, name, seed)
                if args.collect_only or read_run(out) is not None:
                    continue
                jobs.append((config, root, seed, out))

    def train(job) -> int:
        config, root, seed, out = job
        os.makedirs(out, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
        with open(osp.join(out, 'train.log'), 'w') as log:
            rc = subprocess.call(
                train_command(config, root, seed, out, args.cfg_options),
                stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=REPO_ROOT)
        result = parse_logs(out) if rc == 0 else None
        if result is None:
            rc = rc or 1
        else:
            with open(osp.join(out, RESULT_FILE), 'w') as f:
                json.dump(result, f, indent=1)
        print(f'[{rc == 0 and "done" or f"FAILED rc={rc}"}] {out}',
              flush=True)
        return rc

    if jobs:
        print(f'{len(jobs)} trainings, {args.jobs} at a time', flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = list(pool.map(train, jobs))
        if any(codes):
            print('some trainings failed; see train.log in their folders',
                  file=sys.stderr)

    runs = {(config, name, seed):
            read_run(run_dir(args.work_dir, config, name, seed))
            for config in args.configs for name in data
            for seed in args.seeds}
    rows = summarize(runs, args.configs, list(data))
    print(format_rows(rows, args.markdown))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
