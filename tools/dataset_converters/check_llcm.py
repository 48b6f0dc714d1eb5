# Copyright (c) mmvireid contributors. All rights reserved.
"""Check an LLCM copy: layout, index files, images, counts.

    python tools/dataset_converters/check_llcm.py data/llcm
    python tools/dataset_converters/check_llcm.py data/llcm --decode

Every missing folder and index file is reported at once with the expected
layout (exit status 1). The splits are then read by
:class:`mmvireid.datasets.LLCMDataset` (the selection training and testing
use): training images and identities per modality (every listed image is
checked to exist), the test identities and images per modality, and the
query / gallery sizes of both directions for trial 0. The dataset class
also checks the split: a training person folder (``PPPP`` of
``train_*/camC/PPPP/<file>``) that is a test id, a test id without
visible or without near-infrared images and an empty test folder are
errors (exit status 1). Hidden files (``.DS_Store``, ``._*``) are not
images and are not counted. ``--decode`` decodes every listed image with
Pillow behind a progress bar and lists the undecodable ones by path (exit
status 1). LLCM needs no conversion: the datasets read the index files and
folders as they are.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List

from mmvireid.datasets import LLCMDataset
from mmvireid.datasets.llcm import LLCM_LAYOUT
from mmvireid.datasets.split_checks import (quiet_current_logger,
                                            report_undecodable)
from mmvireid.structures import (IR, IR2VIS, MODALITIES, VIS, VIS2IR,
                                 direction_modalities)

REQUIRED_DIRS = ('train_vis', 'train_nir', 'test_vis', 'test_nir', 'idx')
REQUIRED_FILES = ('idx/train_vis.txt', 'idx/train_nir.txt', 'idx/test_id.txt')
#: the directions reported, DEEN's main one (NIR queries) first
DIRECTIONS_SHOWN = (IR2VIS, VIS2IR)


def check_layout(data_root: str) -> List[str]:
    """Every missing folder / file (empty when complete)."""
    if not osp.isdir(data_root):
        return [f'{data_root}/ (the data root itself)']
    missing = [
        f'{osp.join(data_root, d)}/' for d in REQUIRED_DIRS
        if not osp.isdir(osp.join(data_root, d))
    ]
    missing += [
        osp.join(data_root, f) for f in REQUIRED_FILES
        if not osp.isfile(osp.join(data_root, f))
    ]
    return missing


def _count(items: List[dict], mod: str) -> Dict[str, int]:
    sel = [d for d in items if d['modality'] == mod]
    return dict(images=len(sel), ids=len({d['gt_label'] for d in sel}))


def collect_stats(data_root: str) -> dict:
    """Counts of the training and test splits, and of trial 0's query /
    gallery in both directions."""
    warnings: List[str] = []

    def items(**kwargs) -> List[dict]:
        # Warnings are printed once by main(), not logged per dataset.
        with quiet_current_logger():
            ds = LLCMDataset(
                data_root, pipeline=[], serialize_data=False, **kwargs)
        warnings.extend(w for w in ds.split_warnings if w not in warnings)
        return ds.get_data_list()

    train = items(split='train')
    test = items(split='test')
    stats = dict(
        train={m: _count(train, m)
               for m in MODALITIES},
        test={m: _count(test, m)
              for m in MODALITIES},
        missing_files=[
            d['img_path'] for d in train if not osp.isfile(d['img_path'])
        ],
        images=[
            p for p in dict.fromkeys(d['img_path'] for d in train + test)
            if osp.isfile(p)
        ])
    for name in DIRECTIONS_SHOWN:
        mod = direction_modalities(name)[0]  # the query modality
        q = items(split='query', modality=mod)
        g = items(split='gallery', modality=mod)
        stats[name] = dict(query=len(q), gallery=len(g))
    stats['warnings'] = warnings
    return stats


def print_stats(stats: dict) -> None:
    for split in ('train', 'test'):
        s = stats[split]
        vis, ir = s[VIS], s[IR]
        print(f'{split:<6}: visible {vis["images"]} images '
              f'({vis["ids"]} ids), near-infrared {ir["images"]} '
              f'images ({ir["ids"]} ids)')
    for name in DIRECTIONS_SHOWN:
        s = stats[name]
        print(f'{name}: {s["query"]} queries, {s["gallery"]} gallery images '
              'per trial (one per (id, camera) folder)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check an LLCM copy')
    parser.add_argument('data_root', help='LLCM root')
    parser.add_argument(
        '--decode',
        action='store_true',
        help='decode every listed image (Pillow), list the undecodable ones')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = check_layout(args.data_root)
    if missing:
        print(f'LLCM at "{args.data_root}" is incomplete; missing:')
        for path in missing:
            print(f'  - {path}')
        print(f'Expected layout:\n{LLCM_LAYOUT}')
        return 1
    try:
        stats = collect_stats(args.data_root)
    except (FileNotFoundError, ValueError) as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    print(f'LLCM at "{args.data_root}": layout complete')
    print_stats(stats)
    for msg in stats['warnings']:
        print(f'warning: {msg}')
    # Decode the images that exist even when some are missing: one run
    # then names every broken file.
    num_bad = report_undecodable(stats['images']) if args.decode else 0
    if stats['missing_files']:
        for path in stats['missing_files'][:5]:
            print(f'  missing image: {path}')
        print(
            f'ERROR: {len(stats["missing_files"])} training image(s) '
            'listed in idx/ do not exist',
            file=sys.stderr)
    return 1 if stats['missing_files'] or num_bad else 0


if __name__ == '__main__':
    sys.exit(main())
