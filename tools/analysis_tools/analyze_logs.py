# Copyright (c) mmvireid contributors. All rights reserved.
"""Plot training curves per stage, or summarise training time.

Reads the scalar logs mmengine writes (``<work_dir>/<timestamp>/vis_data/
scalars.json``: one JSON object per line; training lines carry ``epoch``,
``iter`` and the losses / learning rates, validation lines ``step`` (the
epoch) and the metrics) and the stage plan of the run's config
(``train_cfg.stages``)::

    # loss, lr, Rank-1 and mAP of all the runs of a work dir, one colour
    # per stage, into <work_dir>/curves.png
    python tools/analysis_tools/analyze_logs.py plot_curve work_dirs/toy_demo

    # other keys, another output
    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/toy_demo --keys loss_id loss_triplet reid/mINP \\
        --out loss_terms.png

    # seconds per iteration, slowest and fastest epoch, per stage
    python tools/analysis_tools/analyze_logs.py cal_train_time work_dirs/toy

A work dir may hold several runs (a resumed training writes a new timestamped
folder): their logs are merged in time order, a later line replacing an
earlier one with the same iteration (or validation epoch). ``lr`` means the
learning rate of the optimiser of the stage being trained (logged as
``<stage>.lr`` by the per-stage optimisers, ``lr`` otherwise).
"""
import argparse
import glob
import json
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

DEFAULT_KEYS = ('loss', 'lr', 'reid/Rank-1', 'reid/mAP')
SCALARS = 'scalars.json'


# ---------------------------------------------------------------------- #
# reading
# ---------------------------------------------------------------------- #
def find_runs(path: str) -> List[str]:
    """The ``vis_data`` folders of ``path``, oldest first.

    ``path`` may be a ``scalars.json`` file, a run folder
    (``<work_dir>/<timestamp>``), its ``vis_data`` folder or a work dir.
    """
    if osp.isfile(path):
        return [osp.dirname(osp.abspath(path))]
    if not osp.isdir(path):
        raise FileNotFoundError(f'"{path}" is neither a log file nor a '
                                'folder.')
    for candidate in (path, osp.join(path, 'vis_data')):
        if osp.isfile(osp.join(candidate, SCALARS)):
            return [candidate]
    # Timestamped run folders (YYYYMMDD_HHMMSS) sort chronologically.
    runs = sorted(
        osp.dirname(f)
        for f in glob.glob(osp.join(path, '*', 'vis_data', SCALARS)))
    if not runs:
        raise FileNotFoundError(
            f'no {SCALARS} under "{path}": expected <work_dir>/<timestamp>/'
            f'vis_data/{SCALARS} (written by mmengine\'s LocalVisBackend '
            'during training).')
    return runs


def load_scalars(run_dirs: Sequence[str]) -> Tuple[List[dict], List[dict]]:
    """Training and validation records of the runs, merged.

    Returns:
        tuple[list[dict], list[dict]]: Training records sorted by ``iter``
        and validation records sorted by ``step`` (epoch); of duplicates
        (a resumed run repeating an iteration) the later run wins.
    """
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for run in run_dirs:
        file = osp.join(run, SCALARS)
        with open(file) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f'{file}, line {lineno}: not a JSON '
                                     'object') from None
                if 'iter' in rec and 'epoch' in rec:
                    train[int(rec['iter'])] = rec
                elif 'step' in rec:
                    val[int(rec['step'])] = rec
    return ([train[k] for k in sorted(train)], [val[k] for k in sorted(val)])


def load_stages(run_dirs: Sequence[str]) -> List[dict]:
    """``[dict(name, begin, end)]`` (0-based epochs, end exclusive) from the
    newest run's config, or ``[]`` when the run has no stage plan.

    The config's ``custom_imports`` are not imported (see below).
    """
    for run in reversed(list(run_dirs)):
        cfg_file = osp.join(run, 'config.py')
        if not osp.isfile(cfg_file):
            continue
        from mmengine.config import Config
        try:
            # Only the stage plan is read: the modules of the config's
            # ``custom_imports`` (a project's models, registered from
            # outside the package) are not needed for it, and are often not
            # importable where the logs are read (no ``PYTHONPATH=.``, a work
            # dir copied to another machine).
            cfg = Config.fromfile(cfg_file, import_custom_modules=False)
        except Exception as e:  # a broken dump must not stop the plot
            print(
                f'warning: cannot read the stage plan from {cfg_file}: {e}',
                file=sys.stderr)
            return []
        stages = (cfg.get('train_cfg') or {}).get('stages') or []
        out, begin = [], 0
        for stage in stages:
            out.append(
                dict(
                    name=stage['name'],
                    begin=begin,
                    end=begin + int(stage['epochs'])))
            begin += int(stage['epochs'])
        return out
    return []


def stage_of_epoch(stages: Sequence[dict], epoch: int) -> Optional[str]:
    """Name of the stage training 1-based ``epoch`` (None without a plan)."""
    for stage in stages:
        if stage['begin'] < epoch <= stage['end']:
            return stage['name']
    return stages[-1]['name'] if stages else None


def train_value(rec: dict, key: str, stage: Optional[str]):
    """Value of ``key`` in a training record; ``lr`` is the current
    stage's learning rate."""
    if key == 'lr':
        if stage is not None and f'{stage}.lr' in rec:
            return rec[f'{stage}.lr']
        return rec.get('lr')
    return rec.get(key)


def split_by_stage(train: List[dict], val: List[dict], stages: List[dict],
                   key: str) -> Tuple[str, 'OrderedDict[str, tuple]']:
    """Per-stage ``(x, y)`` arrays of ``key``.

    Returns:
        tuple: ``('iter' | 'epoch', {stage name: (x, y)})``. Training keys
        are indexed by global iteration, validation keys by epoch; records
        without the key are skipped. Without a stage plan the only stage is
        named ``'all'``.
    """
    is_val = any(key in r for r in val) and not any(key in r for r in train)
    curves: 'OrderedDict[str, tuple]' = OrderedDict()
    records = val if is_val else train
    for rec in records:
        epoch = int(rec['step'] if is_val else rec['epoch'])
        stage = stage_of_epoch(stages, epoch)
        value = rec.get(key) if is_val else train_value(rec, key, stage)
        if value is None:
            continue
        xs, ys = curves.setdefault(stage or 'all', ([], []))
        xs.append(epoch if is_val else int(rec['iter']))
        ys.append(float(value))
    return ('epoch' if is_val else 'iter',
            OrderedDict((k, (np.asarray(x), np.asarray(y)))
                        for k, (x, y) in curves.items()))


# ---------------------------------------------------------------------- #
# commands
# ---------------------------------------------------------------------- #
def plot_curve(path: str,
               keys: Sequence[str] = DEFAULT_KEYS,
               out: Optional[str] = None,
               title: Optional[str] = None) -> str:
    """Draw one subplot per key, each stage in its own colour; returns the
    PNG path (default ``<work_dir>/curves.png``)."""
    import matplotlib
    matplotlib.use('Agg')  # files only; works without a display
    import matplotlib.pyplot as plt

    runs = find_runs(path)
    train, val = load_scalars(runs)
    stages = load_stages(runs)
    panels = []
    for key in keys:
        axis, curves = split_by_stage(train, val, stages, key)
        if not curves:
            print(
                f'warning: "{key}" is not in the logs; skipped',
                file=sys.stderr)
            continue
        panels.append((key, axis, curves))
    if not panels:
        available = sorted({k
                            for r in train + val
                            for k in r} - {'epoch', 'iter', 'step'})
        raise KeyError(f'none of the keys {list(keys)} is in the logs of '
                       f'"{path}"; available: {available}')
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    stage_names = [s['name'] for s in stages] or ['all']
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (key, axis, curves) in zip(axes[:, 0], panels):
        for name, (xs, ys) in curves.items():
            color = colors[stage_names.index(name) % len(colors)] \
                if name in stage_names else None
            ax.plot(
                xs,
                ys,
                marker='o' if axis == 'epoch' else None,
                markersize=3,
                color=color,
                label=name)
        if axis == 'epoch':
            for stage in stages[1:]:
                ax.axvline(stage['begin'] + 0.5, color='grey', ls='--', lw=0.8)
            if stages:  # show the whole plan, non-validating stages too
                ax.set_xlim(0.5, stages[-1]['end'] + 0.5)
        else:
            starts = [xs[0] for xs, _ in list(curves.values())[1:]]
            for x in starts:
                ax.axvline(x, color='grey', ls='--', lw=0.8)
        if key == 'lr':
            ax.set_yscale('log')
        ax.set_ylabel(key)
        ax.set_xlabel('epoch' if axis == 'epoch' else 'iteration')
        ax.grid(alpha=0.3)
        ax.legend(loc='best', fontsize='small')
    fig.suptitle(title or osp.basename(osp.normpath(path)))
    fig.tight_layout()
    if out is None:
        base = path if osp.isdir(path) else osp.dirname(osp.abspath(path))
        out = osp.join(base, 'curves.png')
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cal_train_time(path: str) -> List[dict]:
    """Per-stage iteration times; also printed as a table.

    Returns:
        list[dict]: ``stage``, ``epochs``, ``sec_per_iter`` (mean of the
        logged ``time``), ``slowest_epoch`` / ``fastest_epoch`` (by mean
        iteration time) and ``std`` of the per-epoch means.
    """
    runs = find_runs(path)
    train, _ = load_scalars(runs)
    stages = load_stages(runs)
    per_stage: 'OrderedDict[str, Dict[int, List[float]]]' = OrderedDict()
    for rec in train:
        if 'time' not in rec:
            continue
        epoch = int(rec['epoch'])
        stage = stage_of_epoch(stages, epoch) or 'all'
        per_stage.setdefault(stage,
                             {}).setdefault(epoch,
                                            []).append(float(rec['time']))
    if not per_stage:
        raise KeyError(f'the training logs of "{path}" have no "time" key.')
    rows = []
    for stage, epochs in per_stage.items():
        means = {e: float(np.mean(t)) for e, t in epochs.items()}
        all_times = [t for ts in epochs.values() for t in ts]
        rows.append(
            dict(
                stage=stage,
                epochs=len(epochs),
                sec_per_iter=float(np.mean(all_times)),
                slowest_epoch=max(means, key=means.get),
                fastest_epoch=min(means, key=means.get),
                std=float(np.std(list(means.values())))))
    print(f'{"stage":<12} {"epochs":>6} {"s/iter":>8} {"slowest":>8} '
          f'{"fastest":>8} {"std":>8}')
    for r in rows:
        print(f'{r["stage"]:<12} {r["epochs"]:>6} {r["sec_per_iter"]:>8.4f} '
              f'{r["slowest_epoch"]:>8} {r["fastest_epoch"]:>8} '
              f'{r["std"]:>8.4f}')
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyse training logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot curves per stage')
    plot.add_argument('path', help='work dir, run dir or scalars.json')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=list(DEFAULT_KEYS),
        help='scalars to plot (default: %(default)s)')
    plot.add_argument('--out', help='output PNG (default: <path>/curves.png)')
    plot.add_argument('--title', help='figure title')
    timing = sub.add_parser('cal_train_time', help='time per stage')
    timing.add_argument('path', help='work dir, run dir or scalars.json')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.task == 'plot_curve':
            out = plot_curve(args.path, args.keys, args.out, args.title)
            print(f'curves written to {out}')
        else:
            cal_train_time(args.path)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f'ERROR: {e.args[0] if e.args else e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
