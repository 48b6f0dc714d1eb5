# Copyright (c) mmvireid contributors. All rights reserved.
"""Check a RegDB copy: layout, index files of the 10 splits, images.

    python tools/dataset_converters/check_regdb.py data/regdb [--trials 1 2]
    python tools/dataset_converters/check_regdb.py data/regdb --decode

Every missing folder and index file is reported at once with the expected
layout (exit status 1). Each split's lists are then read by
:class:`mmvireid.datasets.RegDBDataset` (the same parsing and relabelling as
training and testing), the identities and images per modality are counted,
and every listed image is checked to exist. The official release has 412
identities with 10 visible and 10 thermal images each; every split trains
on 206 identities (2,060 images per modality) and tests on the other 206; a
difference is reported as a warning. A person folder (``<pid>`` of
``Visible/<pid>/<file>``) listed by a training and by a test index file of
the same split is an error (exit status 1), raised by the dataset class.
``--decode`` decodes every listed image with Pillow behind a progress bar
and lists the undecodable ones by path (exit status 1). RegDB needs no
conversion: the datasets read the index files and images as they are.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Sequence

from mmvireid.datasets import RegDBDataset
from mmvireid.datasets.regdb import LIST_NAMES, REGDB_LAYOUT
from mmvireid.datasets.split_checks import (quiet_current_logger,
                                            report_undecodable)
from mmvireid.structures import MODALITIES

TRIALS = tuple(range(1, 11))
#: Per split and modality, in the official release.
OFFICIAL = dict(ids=206, images=2060)


def check_layout(data_root: str, trials: Sequence[int] = TRIALS) -> List[str]:
    """Every missing folder / index file (empty when complete)."""
    if not osp.isdir(data_root):
        return [f'{data_root}/ (the data root itself)']
    missing = [
        f'{osp.join(data_root, d)}/' for d in ('Visible', 'Thermal', 'idx')
        if not osp.isdir(osp.join(data_root, d))
    ]
    for trial in trials:
        for split in ('train', 'test'):
            for name in LIST_NAMES.values():
                path = osp.join(data_root, 'idx',
                                f'{split}_{name}_{trial}.txt')
                if not osp.isfile(path):
                    missing.append(path)
    return missing


def collect_stats(data_root: str,
                  trials: Sequence[int] = TRIALS) -> Dict[int, dict]:
    """``{trial: {split: {modality: dict(images, ids, missing_files)}}}``,
    read with the dataset class (its parsing, split checks and errors)."""
    stats = {}
    for trial in trials:
        stats[trial] = {}
        for split in ('train', 'test'):
            with quiet_current_logger():
                items = RegDBDataset(
                    data_root,
                    split=split,
                    trial=trial,
                    pipeline=[],
                    serialize_data=False).get_data_list()
            stats[trial][split] = {}
            for mod in MODALITIES:
                sel = [d for d in items if d['modality'] == mod]
                stats[trial][split][mod] = dict(
                    images=len(sel),
                    ids=len({d['gt_label']
                             for d in sel}),
                    missing_files=[
                        d['img_path'] for d in sel
                        if not osp.isfile(d['img_path'])
                    ],
                    paths=[d['img_path'] for d in sel])
    return stats


def listed_images(stats: Dict[int, dict]) -> List[str]:
    """Every listed image that exists, once (the splits share images)."""
    paths = (
        p for splits in stats.values() for split in splits.values()
        for mod in split.values() for p in mod['paths'])
    return [p for p in dict.fromkeys(paths) if osp.isfile(p)]


def report(stats: Dict[int, dict], compare_official: bool = True) -> int:
    """Print the counts; returns the number of missing image files."""
    num_missing = 0
    for trial, splits in stats.items():
        parts = []
        for split in ('train', 'test'):
            for mod in MODALITIES:
                s = splits[split][mod]
                parts.append(f'{split} {mod} {s["images"]} ({s["ids"]} ids)')
                num_missing += len(s['missing_files'])
                for path in s['missing_files'][:3]:
                    print(f'  missing image: {path}')
                if compare_official:
                    for key, value in OFFICIAL.items():
                        if s[key] != value:
                            print(f'warning: split {trial} {split} {mod}: '
                                  f'{s[key]} {key} (official: {value})')
        print(f'split {trial:>2}: ' + ', '.join(parts))
    return num_missing


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check a RegDB copy')
    parser.add_argument('data_root', help='RegDB root (Visible, Thermal, idx)')
    parser.add_argument(
        '--trials',
        type=int,
        nargs='+',
        default=list(TRIALS),
        help='splits to check (1..10; default: all)')
    parser.add_argument(
        '--decode',
        action='store_true',
        help='decode every listed image (Pillow), list the undecodable ones')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bad = [t for t in args.trials if t not in TRIALS]
    if bad:
        print(f'ERROR: --trials must lie in 1..10, got {bad}', file=sys.stderr)
        return 1
    missing = check_layout(args.data_root, args.trials)
    if missing:
        print(f'RegDB at "{args.data_root}" is incomplete; missing:')
        for path in missing:
            print(f'  - {path}')
        print(f'Expected layout:\n{REGDB_LAYOUT}')
        return 1
    try:
        stats = collect_stats(args.data_root, args.trials)
    except (FileNotFoundError, ValueError) as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    print(f'RegDB at "{args.data_root}": layout complete')
    is_toy = osp.isfile(osp.join(args.data_root, 'toy_meta.json'))
    num_missing = report(stats, compare_official=not is_toy)
    # Decode the images that exist even when some are missing: one run
    # then names every broken file.
    num_bad = report_undecodable(listed_images(stats)) if args.decode else 0
    if num_missing:
        print(
            f'ERROR: {num_missing} listed image(s) do not exist',
            file=sys.stderr)
    return 1 if num_missing or num_bad else 0


if __name__ == '__main__':
    sys.exit(main())
