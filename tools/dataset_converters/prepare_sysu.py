# Copyright (c) mmvireid contributors. All rights reserved.
"""Check a SYSU-MM01 copy and optionally write the pre-resized .npy cache.

    python tools/dataset_converters/prepare_sysu.py data/sysu_mm01
    python tools/dataset_converters/prepare_sysu.py data/sysu_mm01 --decode
    python tools/dataset_converters/prepare_sysu.py data/sysu_mm01 --npy

1. **Layout.** Every camera folder (``cam1`` .. ``cam6``) and identity list
   (``exp/train_id.txt``, ``exp/val_id.txt``, ``exp/test_id.txt``) is
   checked; all missing pieces are reported at once, with the expected
   layout, and the tool exits with status 1.
2. **Counts.** The lists are read by :class:`mmvireid.datasets.
   SYSUMM01Dataset` itself (the selection training and testing use), and
   the identities and images per modality are printed: training (visible /
   infrared), the infrared queries and the gallery candidates of both search
   modes. The official release gives 395 training identities with 22,258
   visible and 11,909 infrared images, and 3,803 infrared queries of 96 test
   identities; a difference is reported as a warning (an incomplete
   download, or a modified copy).
3. **Split sanity**, by the dataset class as well: training ids that are
   also test ids, test ids without images of a modality and empty gallery
   folders are errors (exit status 1); training ids without images are
   warnings. Hidden files (``.DS_Store``, ``._*``) are not images and are
   not counted.
4. **Decoding** (``--decode``). Every listed image (training, queries and
   the gallery candidates of both search modes) is decoded with Pillow
   behind a progress bar; undecodable files are listed by path (exit
   status 1).
5. **Cache** (``--npy``). The training images resized to 144 x 288 (W x H)
   with LANCZOS and stacked as uint8, as the reference's
   ``pre_process_sysu.py`` writes them for the AGW / CSDN data loaders:
   ``train_rgb_resized_img.npy`` (N, 288, 144, 3), ``train_rgb_resized_
   label.npy`` (N,), ``train_ir_resized_img.npy``, ``train_ir_resized_
   label.npy``, in the folder given by ``--out-dir`` (default: the data
   root). Same image order (ids of train + val sorted, cameras 1, 2, 4, 5
   visible and 3, 6 infrared, files sorted) and labels (the infrared
   identities enumerated in ascending order, shared by the visible images).
   The arrays are written straight to disk (``numpy.lib.format.
   open_memmap``), so memory stays flat; images are converted to RGB first
   (a no-op for SYSU's 3-channel JPEGs; the reference would stack a
   grayscale file as a 2-D array and fail).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image

from mmvireid.datasets import SYSUMM01Dataset
from mmvireid.datasets.split_checks import (quiet_current_logger,
                                            report_undecodable)
from mmvireid.datasets.sysu_mm01 import SYSU_LAYOUT
from mmvireid.structures import IR, MODALITIES, VIS

IMG_SIZE = (144, 288)  # (W, H), as pre_process_sysu.py
NPY_NAMES = {
    VIS: ('train_rgb_resized_img.npy', 'train_rgb_resized_label.npy'),
    IR: ('train_ir_resized_img.npy', 'train_ir_resized_label.npy')
}
#: Statistics of the official SYSU-MM01 release (train = train + val ids).
OFFICIAL = dict(
    train_ids=395, train_vis=22258, train_ir=11909, test_ids=96, query_ir=3803)


def check_layout(data_root: str) -> List[str]:
    """Every missing folder / file of the layout (empty when complete)."""
    missing = []
    if not osp.isdir(data_root):
        return [f'{data_root}/ (the data root itself)']
    for cam in range(1, 7):
        if not osp.isdir(osp.join(data_root, f'cam{cam}')):
            missing.append(f'{osp.join(data_root, f"cam{cam}")}/')
    for name in ('train_id.txt', 'val_id.txt', 'test_id.txt'):
        path = osp.join(data_root, 'exp', name)
        if not osp.isfile(path):
            missing.append(path)
    return missing


def _count(items: List[dict]) -> Dict[str, Dict[str, int]]:
    out = {}
    for mod in MODALITIES:
        sel = [d for d in items if d['modality'] == mod]
        out[mod] = dict(images=len(sel), ids=len({d['gt_label'] for d in sel}))
    return out


def collect_stats(data_root: str) -> dict:
    """Identities and images per split and modality, read with the
    dataset class (its selection rules, split checks and error messages).

    Also returns ``warnings`` (the datasets' split warnings, each once) and
    ``images`` (every listed image, for ``--decode``).
    """
    warnings: List[str] = []

    def items(**kwargs) -> List[dict]:
        # The warnings are printed once below, not logged per dataset.
        with quiet_current_logger():
            ds = SYSUMM01Dataset(
                data_root, pipeline=[], serialize_data=False, **kwargs)
        warnings.extend(w for w in ds.split_warnings if w not in warnings)
        return ds.get_data_list()

    train = items(split='train')
    query = items(split='query')
    stats = dict(train=_count(train), query=_count(query)[IR])
    stats['num_classes'] = len({d['gt_label'] for d in train})
    for mode in ('all', 'indoor'):
        gallery = [
            d for d in items(split='test', search_mode=mode)
            if d['modality'] == VIS
        ]
        stats[f'gallery_{mode}'] = _count(gallery)[VIS]
        stats[f'gallery_{mode}']['folders'] = len({(d['gt_label'], d['cam_id'])
                                                   for d in gallery})
        if mode == 'all':  # the indoor gallery is a part of it
            test_all = gallery
    stats['warnings'] = warnings
    stats['images'] = list(
        dict.fromkeys(d['img_path'] for d in train + query + test_all))
    return stats


def official_mismatches(stats: dict) -> List[str]:
    """Differences from the official release's statistics."""
    found = dict(
        train_ids=stats['num_classes'],
        train_vis=stats['train'][VIS]['images'],
        train_ir=stats['train'][IR]['images'],
        test_ids=stats['query']['ids'],
        query_ir=stats['query']['images'])
    return [
        f'{k}: {found[k]} (official release: {v})'
        for k, v in OFFICIAL.items() if found[k] != v
    ]


def print_stats(stats: dict) -> None:
    vis, ir = stats['train'][VIS], stats['train'][IR]
    print(f'train    : {stats["num_classes"]} ids; visible '
          f'{vis["images"]} images ({vis["ids"]} ids), infrared '
          f'{ir["images"]} images ({ir["ids"]} ids)')
    q = stats['query']
    print(f'query    : {q["images"]} infrared images of {q["ids"]} ids '
          '(cameras 3, 6)')
    for mode, cams in (('all', '1, 2, 4, 5'), ('indoor', '1, 2')):
        g = stats[f'gallery_{mode}']
        print(f'gallery  : {mode:<6} search, cameras {cams}: '
              f'{g["images"]} candidate images in {g["folders"]} '
              f'(id, camera) folders -> {g["folders"]} images per '
              'single-shot trial')


def write_npy_cache(data_root: str,
                    out_dir: Optional[str] = None,
                    overwrite: bool = False,
                    verbose: bool = True) -> Dict[str, str]:
    """Write the four ``.npy`` files of ``pre_process_sysu.py``.

    Returns:
        dict[str, str]: ``{file name: path}`` of the written files.
    """
    out_dir = data_root if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    targets = [
        osp.join(out_dir, n) for names in NPY_NAMES.values() for n in names
    ]
    existing = [t for t in targets if osp.exists(t)]
    if existing and not overwrite:
        raise FileExistsError(f'{existing[0]} exists; pass --overwrite to '
                              'replace the cache.')
    train = SYSUMM01Dataset(
        data_root, split='train', pipeline=[],
        serialize_data=False).get_data_list()
    resample = getattr(Image, 'Resampling', Image).LANCZOS
    written = {}
    w, h = IMG_SIZE
    for mod, (img_name, label_name) in NPY_NAMES.items():
        sel = [d for d in train if d['modality'] == mod]
        img_file = osp.join(out_dir, img_name)
        arr = open_memmap(
            img_file, mode='w+', dtype=np.uint8, shape=(len(sel), h, w, 3))
        for i, item in enumerate(sel):
            with Image.open(item['img_path']) as img:
                arr[i] = np.asarray(
                    img.convert('RGB').resize((w, h), resample))
            if verbose and (i + 1) % 2000 == 0:
                print(f'  {mod}: {i + 1}/{len(sel)} images')
        arr.flush()
        del arr
        label_file = osp.join(out_dir, label_name)
        np.save(label_file,
                np.array([d['gt_label'] for d in sel], dtype=np.int64))
        written[img_name], written[label_name] = img_file, label_file
        if verbose:
            print(f'{mod}: {len(sel)} images -> {img_file}, {label_file}')
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a SYSU-MM01 copy; optionally write the '
        'pre-resized .npy training cache')
    parser.add_argument('data_root', help='SYSU-MM01 root (cam1..cam6, exp)')
    parser.add_argument(
        '--npy',
        action='store_true',
        help='write train_{rgb,ir}_resized_{img,label}.npy')
    parser.add_argument(
        '--out-dir', help='folder for the .npy files (default: data_root)')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing .npy')
    parser.add_argument(
        '--decode',
        action='store_true',
        help='decode every listed image (Pillow), list the undecodable ones')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = check_layout(args.data_root)
    if missing:
        print(f'SYSU-MM01 at "{args.data_root}" is incomplete; missing:')
        for path in missing:
            print(f'  - {path}')
        print(f'Expected layout:\n{SYSU_LAYOUT}')
        return 1
    try:
        stats = collect_stats(args.data_root)
    except (FileNotFoundError, ValueError) as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    print(f'SYSU-MM01 at "{args.data_root}": layout complete')
    print_stats(stats)
    for msg in stats['warnings']:
        print(f'warning: {msg}')
    if osp.isfile(osp.join(args.data_root, 'toy_meta.json')):
        print('(synthetic toy data: not compared with the official '
              'statistics)')
    else:
        for diff in official_mismatches(stats):
            print(f'warning: {diff}')
    if args.decode and report_undecodable(stats['images']):
        return 1
    if args.npy:
        try:
            write_npy_cache(args.data_root, args.out_dir, args.overwrite)
        except FileExistsError as e:
            print(f'ERROR: {e}', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
