# Copyright (c) mmvireid contributors. All rights reserved.
"""LLCM (Zhang & Wang, CVPR 2023) with the reference (DEEN) selection."""
import os.path as osp
import re
from typing import List, Sequence, Tuple

from mmvireid.registry import DATASETS
from mmvireid.structures import (IR, MODALITIES, OTHER_MODALITY, VIS,
                                 check_modality, draw_single_shot)
from .base import (BaseVIReIDDataset, folder_groups, list_folder, read_id_file,
                   read_list_file, relabel_by_ir)
from .split_checks import (empty_folder_message, overlap_message, pid_of_path,
                           read_other_split, test_id_errors)

LLCM_LAYOUT = """\
<data_root>/
├── train_vis/ train_nir/      training images (paths listed in idx/)
├── test_vis/cam1..cam9/       visible test cameras
│   └── 0001/*.jpg             one folder per person id (4 digits)
├── test_nir/cam1,cam2,cam4..cam9/   near-infrared test cameras (no cam3)
└── idx/
    ├── train_vis.txt          lines: "train_vis/camC/PPPP/<file> <label>"
    ├── train_nir.txt          lines: "train_nir/camC/PPPP/<file> <label>"
    └── test_id.txt            first line: comma-separated test ids"""

CAMERAS = {VIS: (1, 2, 3, 4, 5, 6, 7, 8, 9), IR: (1, 2, 4, 5, 6, 7, 8, 9)}
TEST_DIRS = {VIS: 'test_vis', IR: 'test_nir'}
TRAIN_LISTS = {VIS: 'train_vis.txt', IR: 'train_nir.txt'}
_CAM_DIR = re.compile(r'^cam(\d+)$')


def camera_from_path(rel_path: str) -> int:
    """Camera number of the first ``camN`` folder of a path, or -1."""
    for part in rel_path.replace('\\', '/').split('/')[:-1]:
        match = _CAM_DIR.match(part)
        if match:
            return int(match.group(1))
    return -1


@DATASETS.register_module()
class LLCMDataset(BaseVIReIDDataset):
    """LLCM, with the file selection of DEEN's ``data_manager.py``.

    Splits (docs/en/protocols.md §4):

    - ``'train'``: ``idx/train_vis.txt`` items then ``idx/train_nir.txt``
      items, in file order (lines ``relative/path label``). Labels are
      relabelled to 0..C-1 by ascending NIR label (the identity map on the
      official files), every visible label must be a NIR one, and ``cam_id``
      comes from the ``camN`` folder of the path (-1 if it has none).
    - ``'query'`` / ``'gallery'``: the ``idx/test_id.txt`` ids (first line,
      4-digit, sorted as strings). The query modality is ``modality``, the
      gallery the other one. The *sampled* side (``sample_side``) takes one
      ``random.choice`` per existing (id, camera) folder after seeding with
      ``trial`` (as ``random.Random(trial)``), the other side every file;
      both are listed ids outer, cameras inner, files sorted.
    - ``'test'``: every file of every visible folder, then every file of
      every NIR folder of the test ids, so a metric can score both
      directions and all trials from one feature pass.

    DEEN's ``test_mode`` maps to our arguments as follows:

    - ``[1, 2]`` (its default, "IR->VIS"): all NIR queries against one
      sampled visible image per (id, camera): ``modality='ir',
      sample_side='gallery'`` (our default).
    - ``[2, 1]`` (called "VIS->IR"): it computes *sampled NIR* rows against
      *all visible* images, i.e. ``modality='ir', sample_side='query'``.
    - Visible queries against a sampled NIR gallery, the reading of
      "VIS->IR" that matches SYSU's structure, is ``modality='vis'``.

    Tags come from the ``camN/PPPP`` folders. The reference splits the whole
    path at the first ``'cam'`` it contains, which breaks when ``data_root``
    itself contains ``'cam'``; ours does not depend on ``data_root``.
    Hidden files (``.DS_Store``, ``._*``) of the test folders are skipped.

    Split sanity (checked for every split; the reference checks none):

    - a training image whose person folder (``PPPP`` of
      ``train_*/camC/PPPP/<file>``) is a test id of ``idx/test_id.txt`` is
      an error naming the ids and the files;
    - a test id without visible (``test_vis``) or without near-infrared
      (``test_nir``) images is an error;
    - an empty (test id, camera) folder of ``test_vis`` or ``test_nir`` is an
      error: either side may be the sampled one, and the draw needs an
      image in every folder.

    Args:
        data_root (str): The LLCM root (see ``LAYOUT``).
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        modality (str): Query modality, ``'ir'`` (NIR) or ``'vis'``.
            Defaults to ``'ir'``.
        trial (int): Seed of the sampled side (the protocol averages 0..9).
            Defaults to 0.
        sample_side (str): ``'gallery'`` or ``'query'``. Defaults to
            ``'gallery'``.
        **kwargs: See :class:`BaseVIReIDDataset`.
    """

    SPLITS = ('train', 'query', 'gallery', 'test')
    LAYOUT = LLCM_LAYOUT
    METAINFO = dict(dataset_name='llcm')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 modality: str = IR,
                 trial: int = 0,
                 sample_side: str = 'gallery',
                 **kwargs) -> None:
        check_modality(modality, 'LLCMDataset: modality (of the queries)')
        if sample_side not in ('gallery', 'query'):
            raise ValueError('LLCMDataset: sample_side must be "gallery" or '
                             f'"query", but got "{sample_side}".')
        self.modality = modality
        self.trial = int(trial)
        self.sample_side = sample_side
        super().__init__(data_root, split=split, **kwargs)

    def protocol_metainfo(self) -> dict:
        return dict(
            modality=self.modality,
            trial=self.trial,
            sample_side=self.sample_side)

    # ------------------------------------------------------------------ #
    def _folders(self, ids: Sequence[str],
                 modality: str) -> List[Tuple[str, int, str, List[str]]]:
        """``(pid, cam, folder, sorted files)`` per existing folder, ids
        outer, cameras inner."""
        root = osp.join(self.data_root, TEST_DIRS[modality])
        self._require(root, f'{TEST_DIRS[modality]} test', is_dir=True)
        out = []
        for pid in ids:
            for cam in CAMERAS[modality]:
                folder = osp.join(root, f'cam{cam}', pid)
                if osp.isdir(folder):
                    out.append((pid, cam, folder, list_folder(folder)))
        return out

    @staticmethod
    def _items(folders, modality: str) -> List[dict]:
        return [
            dict(
                img_path=path,
                gt_label=int(pid),
                cam_id=cam,
                modality=modality) for pid, cam, _, files in folders
            for path in files
        ]

    def _sampled(self, folders, modality: str) -> List[dict]:
        candidates = self._items(folders, modality)
        picks = draw_single_shot(folder_groups(folders), self.trial)
        return [dict(candidates[i]) for i in picks]

    # ------------------------------------------------------------------ #
    # Split sanity
    # ------------------------------------------------------------------ #
    def _overlap_errors(self, train_lists=None) -> List[str]:
        """Training person folders that are test ids, where both the
        training index files and ``idx/test_id.txt`` exist."""
        id_file = osp.join(self.data_root, 'idx', 'test_id.txt')
        paths = {
            m: osp.join(self.data_root, 'idx', name)
            for m, name in TRAIN_LISTS.items()
        }
        test_ids = read_other_split(read_id_file, id_file)
        if test_ids is None:
            return []
        if train_lists is None:
            train_lists = {
                m: read_other_split(read_list_file, p)
                for m, p in paths.items()
            }
        train = [(f'the person folders of "{paths[m]}"',
                  {pid_of_path(rel)
                   for rel, _ in items} - {None})
                 for m, items in train_lists.items() if items is not None]
        test = (f'"{id_file}"', {int(pid) for pid in test_ids})
        msg = overlap_message('LLCMDataset', train, test, fmt='{:04d}'.format)
        return [] if msg is None else [msg]

    def _test_errors(self, ids: Sequence[str], folders: dict) -> List[str]:
        """Test ids without images of a modality, and empty folders."""
        id_file = osp.join(self.data_root, 'idx', 'test_id.txt')
        have = {
            m: {pid
                for pid, _, _, files in folders[m] if files}
            for m in MODALITIES
        }
        where = {
            VIS: ('visible', 'test_vis/cam1..cam9'),
            IR: ('near-infrared', 'test_nir/cam1, cam2, cam4..cam9')
        }
        errors = test_id_errors('LLCMDataset', id_file, ids, have, where)
        msg = empty_folder_message(
            'LLCMDataset', [
                folder for m in MODALITIES
                for _, _, folder, files in folders[m] if not files
            ],
            what='test folder')
        return errors + ([] if msg is None else [msg])

    # ------------------------------------------------------------------ #
    def load_items(self) -> List[dict]:
        if self.split == 'train':
            return self._load_train()
        id_file = osp.join(self.data_root, 'idx', 'test_id.txt')
        self._require(id_file, 'test identity list')
        ids = read_id_file(id_file)
        if self.split == 'test':
            modality = VIS
        elif self.split == 'query':
            modality = self.modality
        else:
            modality = OTHER_MODALITY[self.modality]
        # Both modalities whatever the split (this split's first, so a
        # missing folder of its own is named first): the checks cover both
        # directions, so every test split of a copy fails alike.
        folders = {
            m: self._folders(ids, m)
            for m in (modality, OTHER_MODALITY[modality])
        }
        self._report(self._overlap_errors() + self._test_errors(ids, folders))
        if self.split == 'test':
            return [
                item for m in MODALITIES
                for item in self._items(folders[m], m)
            ]
        if self.split == self.sample_side:
            return self._sampled(folders[modality], modality)
        return self._items(folders[modality], modality)

    def _load_train(self) -> List[dict]:
        lists = {}
        for modality, name in TRAIN_LISTS.items():
            path = osp.join(self.data_root, 'idx', name)
            self._require(path, 'training index')
            lists[modality] = read_list_file(path)
        self._report(self._overlap_errors(lists))
        pid2label = relabel_by_ir(
            [label for _, label in lists[VIS]],
            [label for _, label in lists[IR]],
            source=f'idx/train_vis.txt and idx/train_nir.txt of '
            f'{self.data_root}')
        self._metainfo['num_classes'] = len(pid2label)
        return [
            dict(
                img_path=osp.join(self.data_root, rel),
                gt_label=pid2label[label],
                cam_id=camera_from_path(rel),
                modality=modality) for modality in MODALITIES
            for rel, label in lists[modality]
        ]
