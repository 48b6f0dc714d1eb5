# Copyright (c) mmvireid contributors. All rights reserved.
"""SYSU-MM01 (Wu et al., ICCV 2017) with the reference file selection."""
import os.path as osp
from typing import List, Sequence, Tuple

from mmvireid.registry import DATASETS
from mmvireid.structures import (GALLERY_MODES, IR, VIS, draw_multi_shot,
                                 draw_single_shot)
from .base import (BaseVIReIDDataset, folder_groups, list_folder, read_id_file,
                   relabel_by_ir)
from .split_checks import (empty_folder_message, format_ids, overlap_message,
                           read_other_split, test_id_errors)

SYSU_LAYOUT = """\
<data_root>/
├── cam1/ cam2/ cam4/ cam5/     visible cameras (cam1, cam2 indoor)
├── cam3/ cam6/                 infrared cameras (cam3 indoor)
│   └── 0001/                   one folder per person id (4 digits)
│       ├── 0001.jpg
│       └── ...
└── exp/
    ├── train_id.txt            first line: comma-separated ids
    ├── val_id.txt
    └── test_id.txt"""

VIS_CAMS = (1, 2, 4, 5)
IR_CAMS = (3, 6)
GALLERY_CAMS = dict(all=(1, 2, 4, 5), indoor=(1, 2))


@DATASETS.register_module()
class SYSUMM01Dataset(BaseVIReIDDataset):
    """SYSU-MM01, with the file selection of the reference code.

    Splits (docs/en/protocols.md §2):

    - ``'train'``: the ids of the first line of ``exp/train_id.txt`` followed
      by those of ``exp/val_id.txt`` (395 ids), as ``pre_process_sysu.py``
      selects them: every file of cameras 1, 2, 4, 5 (visible) then every
      file of cameras 3, 6 (infrared), ids outer (sorted as 4-digit strings),
      cameras inner, files sorted. All visible items come first, then all
      infrared ones. Labels enumerate the infrared pids in ascending order;
      ``metainfo['num_classes']`` is their number.
    - ``'query'``: every file of cameras 3 and 6 of the ``exp/test_id.txt``
      ids (the same for both search modes); ``gt_label`` = person id.
    - ``'gallery'``: the visible cameras of ``search_mode``; ``'single'``
      draws one file per (id, camera) folder with ``random.Random(trial)``,
      exactly the draws of the reference's ``random.seed(trial)`` +
      ``random.choice`` (without touching the global ``random`` state).
      ``'multi'`` draws 10 files per folder without replacement from
      ``np.random.RandomState(trial)``. The reference (CSDN) draws them from
      numpy's *global*, unseeded state, so its multi-shot galleries are not
      reproducible; ours are, per trial. A folder with fewer than 10 files is
      an error, as in the reference.
    - ``'test'``: the query items (infrared) followed by **every** file of
      every gallery folder of ``search_mode`` (visible), ids outer, cameras
      inner, files sorted, so a metric can draw all trials from one
      feature pass: the candidates of one (id, camera) folder are
      consecutive, in the order the reference draws from.

    Tags: the reference reads the camera and the pid from fixed offsets of
    the path string (``path[-15]`` and ``path[-13:-9]``), which is right only
    for 8-character file names such as ``0001.jpg``; we take them from the
    folder names, which agrees for those names and stays right for others.

    Paths are ``os.path.join(data_root, 'camC', 'PPPP', name)``; the
    reference glues the name with ``'/'``, which gives the same string on
    POSIX unless ``data_root`` ends with a separator. Like the reference, no
    extension filter is applied and (id, camera) folders that do not exist
    are skipped; hidden files (``.DS_Store``, ``._*``) are skipped too.

    Split sanity (checked for every split; the reference checks none):

    - an id of ``exp/train_id.txt`` or ``exp/val_id.txt`` that is also in
      ``exp/test_id.txt`` is an error naming the ids and the files;
    - a test id without infrared images (cameras 3, 6: no query) or without
      visible images (cameras 1, 2, 4, 5: its queries have no true match)
      is an error;
    - an empty gallery folder (a test id's folder of a gallery camera of
      ``search_mode``) is an error: the single-shot draw needs an image in
      every folder;
    - a training id without any image is a warning (it is left out, and
      ``num_classes`` counts the ids that remain).

    Args:
        data_root (str): The SYSU-MM01 root (see ``LAYOUT``).
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        search_mode (str): ``'all'`` (gallery cameras 1, 2, 4, 5) or
            ``'indoor'`` (1, 2). Defaults to ``'all'``.
        gallery_mode (str): ``'single'`` or ``'multi'`` shot. Defaults to
            ``'single'``.
        trial (int): Seed of the gallery draw (the protocol averages
            0..9). Defaults to 0.
        num_shots (int): Files per folder in multi-shot mode. Defaults to 10.
        **kwargs: See :class:`BaseVIReIDDataset` (``pipeline``,
            ``descriptions``, ``lazy_init``, ...).
    """

    SPLITS = ('train', 'query', 'gallery', 'test')
    LAYOUT = SYSU_LAYOUT
    METAINFO = dict(dataset_name='sysu_mm01')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 search_mode: str = 'all',
                 gallery_mode: str = 'single',
                 trial: int = 0,
                 num_shots: int = 10,
                 **kwargs) -> None:
        if search_mode not in GALLERY_CAMS:
            raise ValueError('SYSUMM01Dataset: search_mode must be "all" or '
                             f'"indoor", but got "{search_mode}".')
        if gallery_mode not in GALLERY_MODES:
            raise ValueError('SYSUMM01Dataset: gallery_mode must be "single" '
                             f'or "multi", but got "{gallery_mode}".')
        self.search_mode = search_mode
        self.gallery_mode = gallery_mode
        self.trial = int(trial)
        self.num_shots = int(num_shots)
        super().__init__(data_root, split=split, **kwargs)

    def protocol_metainfo(self) -> dict:
        return dict(
            search_mode=self.search_mode,
            gallery_mode=self.gallery_mode,
            trial=self.trial,
            num_shots=self.num_shots)

    # ------------------------------------------------------------------ #
    def _id_file(self, name: str) -> str:
        return osp.join(self.data_root, 'exp', name)

    def _ids(self, names: Sequence[str]) -> List[str]:
        ids = []
        for name in names:
            path = self._id_file(name)
            self._require(path, 'identity list')
            # pre_process_sysu.py concatenates the lists and sorts the union.
            ids.extend(read_id_file(path))
        return sorted(ids)

    def _check_cameras(self, cams: Sequence[int]) -> None:
        # Folders of single ids may be missing (they are skipped, as in the
        # reference), but a missing camera folder is a broken layout.
        for cam in cams:
            self._require(
                osp.join(self.data_root, f'cam{cam}'),
                f'camera {cam}',
                is_dir=True)

    def _folders(self, ids: Sequence[str],
                 cams: Sequence[int]) -> List[Tuple[str, int, str, List[str]]]:
        """``(pid, cam, folder, sorted files)`` per existing folder, ids
        outer, cameras inner."""
        self._check_cameras(cams)
        out = []
        for pid in ids:
            for cam in cams:
                folder = osp.join(self.data_root, f'cam{cam}', pid)
                if osp.isdir(folder):
                    out.append((pid, cam, folder, list_folder(folder)))
        return out

    @staticmethod
    def _items(folders, modality: str, label_of=int) -> List[dict]:
        return [
            dict(
                img_path=path,
                gt_label=label_of(int(pid)),
                cam_id=cam,
                modality=modality) for pid, cam, _, files in folders
            for path in files
        ]

    # ------------------------------------------------------------------ #
    # Split sanity
    # ------------------------------------------------------------------ #
    def _overlap_errors(self) -> List[str]:
        """Training (train + val) ids that are also test ids, where both
        sides' lists exist (the split being built has read its own)."""
        lists = {}
        for name in ('train_id.txt', 'val_id.txt', 'test_id.txt'):
            ids = read_other_split(read_id_file, self._id_file(name))
            if ids is not None:
                lists[name] = ids
        if 'test_id.txt' not in lists:
            return []
        test = (f'"{self._id_file("test_id.txt")}"', lists.pop('test_id.txt'))
        msg = overlap_message('SYSUMM01Dataset',
                              [(f'"{self._id_file(name)}"', ids)
                               for name, ids in lists.items()], test)
        return [] if msg is None else [msg]

    def _test_id_errors(self, test_ids: Sequence[str], query_folders,
                        vis_folders) -> List[str]:
        """Listed test ids without infrared or without visible images."""
        have = {
            IR: {pid
                 for pid, _, _, files in query_folders if files},
            VIS: {pid
                  for pid, _, _, files in vis_folders if files}
        }
        where = {
            VIS: ('visible', 'cam1, cam2, cam4, cam5'),
            IR: ('infrared', 'cam3, cam6')
        }
        return test_id_errors('SYSUMM01Dataset', self._id_file('test_id.txt'),
                              test_ids, have, where)

    def _train_id_warnings(self, folders) -> List[str]:
        """Listed training ids without any image (left out of training)."""
        have = {pid for pid, _, _, files in folders if files}
        warnings = []
        for name in ('train_id.txt', 'val_id.txt'):
            missing = sorted(set(read_id_file(self._id_file(name))) - have)
            if missing:
                verb = 'has' if len(missing) == 1 else 'have'
                warnings.append(
                    f'SYSUMM01Dataset: {format_ids(missing, "training id")} '
                    f'listed in "{self._id_file(name)}" {verb} no image in '
                    'cam1..cam6 and will not be trained on (num_classes '
                    'counts the ids with images).')
        return warnings

    # ------------------------------------------------------------------ #
    def load_items(self) -> List[dict]:
        if self.split == 'train':
            return self._load_train()
        test_ids = self._ids(['test_id.txt'])
        query_folders = self._folders(test_ids, IR_CAMS)
        # Every visible camera, whatever the search mode: a test id must
        # have a gallery image in the all-search gallery. Filtering keeps
        # the order (ids outer, cameras inner).
        vis_folders = self._folders(test_ids, VIS_CAMS)
        gallery_cams = GALLERY_CAMS[self.search_mode]
        gallery_folders = [f for f in vis_folders if f[1] in gallery_cams]
        errors = self._overlap_errors()
        errors += self._test_id_errors(test_ids, query_folders, vis_folders)
        # Checked for the query split too, so that every test split of a
        # copy fails alike (and a checker reports all problems at once).
        msg = empty_folder_message(
            'SYSUMM01Dataset',
            [folder for _, _, folder, files in gallery_folders if not files])
        errors += [] if msg is None else [msg]
        self._report(errors)
        query = self._items(query_folders, IR)
        if self.split == 'query':
            return query
        if self.split == 'test':
            return query + self._items(gallery_folders, VIS)
        return self._draw_gallery(gallery_folders)

    def _load_train(self) -> List[dict]:
        ids = self._ids(['train_id.txt', 'val_id.txt'])
        vis_folders = self._folders(ids, VIS_CAMS)
        ir_folders = self._folders(ids, IR_CAMS)
        self._report(self._overlap_errors(),
                     self._train_id_warnings(vis_folders + ir_folders))
        pid2label = relabel_by_ir(
            [int(pid) for pid, _, _, files in vis_folders if files],
            [int(pid) for pid, _, _, files in ir_folders if files],
            source=f'{self.data_root}/cam1..cam6')
        self._metainfo['num_classes'] = len(pid2label)
        return (self._items(vis_folders, VIS, pid2label.__getitem__) +
                self._items(ir_folders, IR, pid2label.__getitem__))

    def _draw_gallery(self, folders) -> List[dict]:
        candidates = self._items(folders, VIS)
        if self.gallery_mode == 'single':
            picks = draw_single_shot(folder_groups(folders), self.trial)
        else:
            picks = draw_multi_shot(
                folder_groups(folders, self.num_shots),
                self.trial,
                num=self.num_shots)
        return [dict(candidates[i]) for i in picks]
