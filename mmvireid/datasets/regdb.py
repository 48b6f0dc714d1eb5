# Copyright (c) mmvireid contributors. All rights reserved.
"""RegDB (Nguyen et al., Sensors 2017) with the reference split files."""
import os.path as osp
from typing import List, Optional

from mmvireid.registry import DATASETS
from mmvireid.structures import IR, MODALITIES, VIS
from .base import BaseVIReIDDataset, read_list_file, relabel_by_ir
from .split_checks import overlap_message, pid_of_path, read_other_split

REGDB_LAYOUT = """\
<data_root>/
├── Visible/<pid>/*.bmp        visible images, one folder per person
├── Thermal/<pid>/*.bmp        thermal images
└── idx/
    ├── train_visible_{1..10}.txt   lines: "Visible/<pid>/<file> <label>"
    ├── train_thermal_{1..10}.txt   lines: "Thermal/<pid>/<file> <label>"
    ├── test_visible_{1..10}.txt
    └── test_thermal_{1..10}.txt"""

# RegDB has one visible and one thermal camera (a dual-camera rig); these
# numbers keep the two modalities apart wherever a camera id is expected,
# as the reference evaluation does (query cam 1, gallery cam 2).
CAM_IDS = {VIS: 1, IR: 2}
LIST_NAMES = {VIS: 'visible', IR: 'thermal'}


@DATASETS.register_module()
class RegDBDataset(BaseVIReIDDataset):
    """RegDB, read from the index files of one of its 10 random splits.

    Each index line is ``relative/path label`` separated by a single space.
    Image paths are ``os.path.join(data_root, relative)`` (the reference glues
    ``root + '/' + relative``, a double slash when ``root`` ends with '/').

    - ``'train'``: ``idx/train_visible_{trial}.txt`` items then
      ``idx/train_thermal_{trial}.txt`` items, in file order. Labels are
      relabelled to 0..C-1 by ascending thermal label (the identity map on
      the official files, whose labels are already 0..205), and every visible
      label must also be a thermal one.
    - ``'test'``: ``idx/test_visible_{trial}.txt`` items then
      ``idx/test_thermal_{trial}.txt`` items; ``gt_label`` is the label of
      the file. Both directions (visible->thermal, thermal->visible) use the
      full sets, so the metric takes queries and gallery by modality.

    ``cam_id`` is 1 for visible and 2 for thermal images: RegDB has no camera
    labels, and the reference's camera filter never fires.

    Split sanity: a person folder (``<pid>`` of ``Visible/<pid>/<file>``)
    listed by a training index file and by a test index file of the same
    trial is an error naming the ids and the files (checked for both
    splits, where both sides' files exist). The labels are not compared:
    the official test files restart them from 0.

    Args:
        data_root (str): The RegDB root (see ``LAYOUT``).
        split (str): ``'train'`` or ``'test'``.
        trial (int): The split, 1..10. Defaults to 1.
        modality (str, optional): ``'vis'`` or ``'ir'`` keeps one modality;
            None keeps both (visible first). Training labels do not depend
            on it. Defaults to None.
        **kwargs: See :class:`BaseVIReIDDataset`.
    """

    SPLITS = ('train', 'test')
    LAYOUT = REGDB_LAYOUT
    METAINFO = dict(dataset_name='regdb')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 trial: int = 1,
                 modality: Optional[str] = None,
                 **kwargs) -> None:
        if modality not in (None, ) + MODALITIES:
            raise ValueError('RegDBDataset: modality must be None or one of '
                             f'{MODALITIES}, but got {modality!r}.')
        if isinstance(trial, bool) or not isinstance(trial, int) \
                or not 1 <= trial <= 10:
            raise ValueError('RegDBDataset: trial must be an int in 1..10 '
                             f'(the 10 official splits), but got {trial!r}.')
        self.trial = trial
        self.modality = modality
        super().__init__(data_root, split=split, **kwargs)

    def protocol_metainfo(self) -> dict:
        return dict(trial=self.trial, modality=self.modality)

    def _list_path(self, split: str, modality: str) -> str:
        name = f'{split}_{LIST_NAMES[modality]}_{self.trial}.txt'
        return osp.join(self.data_root, 'idx', name)

    def _read(self, modality: str) -> List[tuple]:
        path = self._list_path(self.split, modality)
        self._require(path, 'index')
        return read_list_file(path)

    def _overlap_errors(self) -> List[str]:
        """Person folders listed for training and for testing (this trial),
        from the index files that exist."""
        sides = dict(train=[], test=[])
        for split in sides:
            for modality in MODALITIES:
                path = self._list_path(split, modality)
                items = read_other_split(read_list_file, path)
                if items is not None:
                    pids = {pid_of_path(rel) for rel, _ in items} - {None}
                    sides[split].append((path, pids))
        if not sides['train'] or not sides['test']:
            return []
        # One side per split: the visible and thermal lists of a split
        # hold the same people.
        train, test = (('the person folders of ' +
                        ' and '.join(f'"{p}"' for p, _ in sides[split]),
                        set().union(*(ids for _, ids in sides[split])))
                       for split in ('train', 'test'))
        msg = overlap_message('RegDBDataset', [train], test)
        return [] if msg is None else [msg]

    def load_items(self) -> List[dict]:
        modalities = MODALITIES if self.modality is None \
            else (self.modality, )
        # Training labels come from both lists whatever ``modality`` keeps.
        needed = MODALITIES if self.split == 'train' else modalities
        lists = {m: self._read(m) for m in needed}
        self._report(self._overlap_errors())
        if self.split == 'train':
            pid2label = relabel_by_ir(
                [label for _, label in lists[VIS]],
                [label for _, label in lists[IR]],
                source=f'idx/train_*_{self.trial}.txt of {self.data_root}')
            self._metainfo['num_classes'] = len(pid2label)
            label_of = pid2label.__getitem__
        else:
            label_of = int
        return [
            dict(
                img_path=osp.join(self.data_root, rel),
                gt_label=label_of(label),
                cam_id=CAM_IDS[m],
                modality=m) for m in modalities for rel, label in lists[m]
        ]
