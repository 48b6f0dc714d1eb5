# Copyright (c) mmvireid contributors. All rights reserved.
"""Base class and shared helpers of the visible-infrared ReID datasets.

Every dataset of this package lists plain dicts (``data_list``)::

    dict(img_path=str,      # os.path.join(data_root, <relative path>)
         gt_label=int,      # train: identity relabelled 0..C-1, shared by
                            # both modalities; test: the ORIGINAL person id
         cam_id=int,        # the dataset's camera number
         modality=str,      # 'vis' or 'ir'
         text=str)          # optional, train only (``descriptions=...``)

The file selection of each subclass reproduces the reference code of the
dataset (see ``docs/en/protocols.md``), item for item and in the same order,
so that scores computed on our lists equal the published protocols.
"""
import logging
import os.path as osp
import pickle
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose, force_full_init
from mmengine.logging import print_log

from mmvireid.structures import VIS
from .descriptions import load_descriptions
from .image_cache import DecodedImageCache, cacheable_prefix
from .split_checks import SplitError, list_visible


def check_exists(path: str,
                 what: str,
                 dataset: str,
                 layout: str,
                 is_dir: bool = False) -> None:
    """Raise a ``FileNotFoundError`` that shows the expected layout.

    Args:
        path (str): The file or folder that must exist.
        what (str): A few words saying what ``path`` is, for the message.
        dataset (str): The dataset name, for the message.
        layout (str): A short tree of the expected on-disk layout.
        is_dir (bool): Whether ``path`` must be a folder. Defaults to False.
    """
    ok = osp.isdir(path) if is_dir else osp.isfile(path)
    if not ok:
        kind = 'folder' if is_dir else 'file'
        raise FileNotFoundError(
            f'{dataset}: the {what} {kind} "{path}" does not exist. '
            f'The dataset is expected in this layout:\n{layout}')


def read_id_file(path: str) -> List[str]:
    """Read a comma-separated identity list the way the references do.

    Only the **first line** is read; every id is parsed as an int and written
    back zero-padded to 4 digits. Duplicates are kept and the list is sorted
    **as strings** (docs/en/protocols.md §2), which equals the numeric order
    for ids below 10000.

    Args:
        path (str): e.g. ``<root>/exp/test_id.txt``.

    Returns:
        list[str]: The sorted 4-digit ids, e.g. ``['0001', '0003']``.
    """
    with open(path, 'r') as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f'The identity list "{path}" is empty; its first '
                         'line must hold comma-separated person ids.')
    ids = []
    for token in lines[0].split(','):
        # The references call int() on every token, so a trailing comma
        # crashes them; tolerating it changes no selection.
        if not token.strip():
            continue
        try:
            ids.append('%04d' % int(token))
        except ValueError:
            raise ValueError(
                f'The identity list "{path}" holds "{token.strip()}", which '
                'is not an integer person id.') from None
    return sorted(ids)


def list_folder(folder: str) -> List[str]:
    """Every entry of ``folder`` sorted by name, as full paths, except
    hidden files.

    Like the references, no extension filter is applied: every entry of the
    folder is an image of the protocol. Unlike them, hidden files
    (``.DS_Store``, macOS ``._*`` copies) are skipped: they are never
    images, and the references would draw them as gallery images.
    """
    return [osp.join(folder, name) for name in list_visible(folder)]


def read_list_file(path: str) -> List[Tuple[str, int]]:
    """Read an index file whose lines are ``relative/path label``.

    Lines are split on a single space, as the references do; blank lines are
    skipped.

    Returns:
        list[tuple[str, int]]: ``(relative path, label)`` in file order.
    """
    items = []
    with open(path, 'r') as f:
        for lineno, line in enumerate(f.read().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split(' ')
            try:
                items.append((parts[0], int(parts[1])))
            except (IndexError, ValueError):
                raise ValueError(
                    f'Line {lineno} of "{path}" is "{line}"; every line must '
                    'be "relative/path label" separated by one space, with '
                    'an integer label.') from None
    if not items:
        raise ValueError(f'The index file "{path}" lists no image.')
    return items


def folder_groups(folders: Sequence[tuple],
                  min_files: int = 1) -> List[List[int]]:
    """Candidate positions of every folder visit, for the gallery draws.

    Args:
        folders (Sequence[tuple]): ``(pid, cam, folder, sorted files)`` per
            folder visit, in walk order; the candidates are these files
            concatenated.
        min_files (int): Files a folder must hold (1 for single-shot, the
            number of shots for multi-shot). Defaults to 1.

    Returns:
        list[list[int]]: One list of consecutive positions per visit. An id
        listed twice in the id file gives two visits, drawn from twice, as in
        the reference.
    """
    groups, start = [], 0
    for _, _, folder, files in folders:
        if len(files) < min_files:
            raise ValueError(
                f'The folder "{folder}" holds {len(files)} file(s), fewer '
                f'than the {min_files} drawn without replacement from every '
                'existing (id, camera) folder of a sampled gallery (the '
                'reference fails on it too).')
        groups.append(list(range(start, start + len(files))))
        start += len(files)
    return groups


def relabel_by_ir(vis_pids: Sequence[int], ir_pids: Sequence[int],
                  source: str) -> Dict[int, int]:
    """Map training person ids to labels 0..C-1 shared by both modalities.

    Like ``pre_process_sysu.py``, the labels enumerate the pids of the
    **infrared** list in ascending order, and a visible pid missing from it is
    an error (the reference raises a bare ``KeyError``). The sampler indexes
    its per-label position lists by label value, so labels must be 0..C-1 and
    every visible identity must also have infrared images.

    Args:
        vis_pids (Sequence[int]): Person id of every visible image.
        ir_pids (Sequence[int]): Person id of every infrared image.
        source (str): Where the ids come from, for the error message.

    Returns:
        dict[int, int]: ``{pid: label}``.
    """
    pid2label = {pid: label for label, pid in enumerate(sorted(set(ir_pids)))}
    for pid in vis_pids:
        if pid not in pid2label:
            raise ValueError(
                f'Person id {pid} has visible training images but no '
                f'infrared one ({source}); every training identity needs '
                'both modalities.')
    return pid2label


def _subset_positions(indices: Union[int, Sequence[int]],
                      length: int) -> np.ndarray:
    """Positions kept by ``BaseDataset.get_subset(indices)``.

    Mirrors MMEngine's convention: a non-negative int keeps the first
    ``indices`` items, a negative int the last ``-indices``, a sequence the
    listed positions in its order.
    """
    if isinstance(indices, int):
        if indices >= 0:
            return np.arange(min(indices, length))
        return np.arange(max(length + indices, 0), length)
    return np.asarray(list(indices), dtype=np.int64).reshape(-1)


class BaseVIReIDDataset(BaseDataset):
    """Base class of the visible-infrared person ReID datasets.

    Subclasses implement :meth:`load_items`, which returns the ``data_list``
    items (see the module docstring) in the reference order. This class adds:

    - the ``split`` argument and ``test_mode`` derived from it;
    - per-image text descriptions for the training split
      (``descriptions='descriptions.json'``, see
      :func:`mmvireid.datasets.descriptions.load_descriptions`);
    - fast label / modality / camera arrays for samplers and metrics
      (:meth:`get_labels`, :meth:`get_modalities`, :meth:`get_cam_ids`),
      read without running the pipeline and kept in sync by ``get_subset``;
    - ``metainfo['num_classes']`` for the training split, set when the data
      list is loaded (so after ``full_init()`` under ``lazy_init=True``; the
      :attr:`num_classes` property loads it on demand);
    - an optional decoded-once image cache (``image_cache=dict(...)``, see
      :class:`~mmvireid.datasets.image_cache.DecodedImageCache`): the
      pipeline's leading ``LoadImageFromFile`` + fixed-size ``Resize`` run
      once per image when the data list is loaded; afterwards
      :meth:`prepare_data` copies the image from a memory-mapped ``.npy``
      and runs only the rest of the pipeline, with bit-identical outputs.

    Args:
        data_root (str): Root folder of the dataset.
        split (str): One of :attr:`SPLITS`.
        pipeline (list): Transforms applied to every item. Defaults to ``[]``.
        descriptions (str, optional): JSON file ``{relative image path:
            text}``, relative to ``data_root`` or absolute. Only the training
            split reads it. Defaults to None.
        test_mode (bool, optional): Defaults to ``split != 'train'``.
        metainfo (dict, optional): Extra meta information.
        image_cache (dict, optional): ``dict(dir=<folder>, num_workers=N)``
            turns the decoded-image cache on. ``dir`` is relative to
            ``data_root`` or absolute (default ``'cache'``); ``num_workers``
            is the number of processes decoding images when the cache is
            built (default 0: this process). Datasets with the same images
            and the same prefix share one file (e.g. the train split under
            the train and under the test pipeline). An empty pipeline
            (listing files only) turns it off. Defaults to None (off).
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments
            (``lazy_init``, ``serialize_data``, ``indices``, ...).
    """

    #: The splits a subclass accepts.
    SPLITS: Tuple[str, ...] = ('train', 'test')
    #: A short tree of the expected on-disk layout, shown in errors.
    LAYOUT: str = ''
    METAINFO: dict = dict(dataset_name='vireid')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 descriptions: Optional[str] = None,
                 test_mode: Optional[bool] = None,
                 metainfo: Optional[dict] = None,
                 image_cache: Optional[dict] = None,
                 **kwargs) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: split must be one of '
                             f'{self.SPLITS}, but got "{split}".')
        if not isinstance(data_root, str) or not data_root:
            raise ValueError(f'{type(self).__name__}: data_root must be a '
                             f'non-empty path, but got {data_root!r}.')
        self.split = split
        self.descriptions = descriptions
        if descriptions is not None and split != 'train':
            # A base config may share one dataset dict across splits; the
            # texts are only used in training, so ignore them elsewhere.
            print_log(
                f'{type(self).__name__}: descriptions are only used by the '
                f'train split; ignoring them for split="{split}".',
                logger='current')
        self._fields: Optional[Dict[str, np.ndarray]] = None
        #: Warnings of the split checks (e.g. training ids without images),
        #: also logged; the dataset checkers print them.
        self.split_warnings: List[str] = []
        # Set before BaseDataset.__init__, which calls full_init().
        self.image_cache_cfg = self._check_image_cache_cfg(image_cache)
        self._image_cache: Optional[DecodedImageCache] = None
        self._after_cache: Optional[Compose] = None
        super().__init__(
            data_root=data_root,
            pipeline=list(pipeline),
            test_mode=(split != 'train') if test_mode is None else test_mode,
            metainfo=metainfo,
            **kwargs)
        # Added after BaseDataset.__init__, whose metainfo loader would take
        # every string value for a file name and warn about it. A metric gets
        # these keys as ``dataset_meta`` and can pick the protocol from them.
        self._metainfo.update(split=split, **self.protocol_metainfo())
        # Under lazy_init, a pipeline the cache cannot serve fails now, not
        # when the data list is first needed.
        self._cache_prefix_length()

    def protocol_metainfo(self) -> dict:
        """Protocol arguments (search mode, trial, ...) for ``metainfo``."""
        return {}

    def _require(self, path: str, what: str, is_dir: bool = False) -> None:
        """Fail with the expected layout unless ``path`` exists."""
        check_exists(path, what, type(self).__name__, self.LAYOUT, is_dir)

    def _report(self, errors: Sequence[str],
                warnings: Sequence[str] = ()) -> None:
        """Log the split checks' warnings; raise their errors, all at once.

        Warnings are kept in :attr:`split_warnings` too. Errors go into one
        :class:`~mmvireid.datasets.split_checks.SplitError` (one paragraph
        each), so a broken copy is reported in one go.
        """
        for msg in warnings:
            if msg not in self.split_warnings:
                self.split_warnings.append(msg)
                print_log(msg, logger='current', level=logging.WARNING)
        if errors:
            raise SplitError('\n'.join(errors))

    # ------------------------------------------------------------------ #
    # Loading
    # ------------------------------------------------------------------ #
    def load_items(self) -> List[dict]:
        """Return the ``data_list`` items in the reference order.

        A training split must also set ``self._metainfo['num_classes']``.
        """
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        """Load the items and attach descriptions to the training split."""
        self._require(self.data_root, 'data_root', is_dir=True)
        items = self.load_items()
        if not items:
            raise FileNotFoundError(
                f'{type(self).__name__}: no image found for split '
                f'"{self.split}" under "{self.data_root}". The dataset is '
                f'expected in this layout:\n{self.LAYOUT}')
        if self.split == 'train' and self.descriptions is not None:
            load_descriptions(self.descriptions, items, self.data_root)
        return items

    def full_init(self) -> None:
        """Load the data list, then cache labels, modalities and cameras.

        Same steps as :meth:`mmengine.dataset.BaseDataset.full_init`; the
        arrays are built before serialisation clears ``data_list``.
        """
        if self._fully_initialized:
            return
        self._cache_prefix_length()  # fail before listing files
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        # The cache holds the whole list (before ``indices``), so datasets
        # that differ only in ``indices`` share it; ``cache_index`` maps
        # every item to its row and follows the item through subsets.
        cache_index = None
        if self._after_cache is not None:
            self._open_image_cache(self.data_list)
            cache_index = np.arange(len(self.data_list), dtype=np.int64)
        if self._indices is not None:
            if cache_index is not None:
                cache_index = cache_index[_subset_positions(
                    self._indices, len(self.data_list))]
            self.data_list = self._get_unserialized_subset(self._indices)
        self._fields = self._build_fields(self.data_list)
        if cache_index is not None:
            self._fields['cache_index'] = cache_index
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """Pickle the items into one byte buffer, as MMEngine does.

        MMEngine follows with a full ``gc.collect()``, which costs 0.1 s or
        more once torch is imported and frees nothing here: the items are
        flat dicts of str / int without reference cycles, so clearing the
        list already releases them.
        """
        blobs = [
            np.frombuffer(pickle.dumps(item, protocol=4), dtype=np.uint8)
            for item in self.data_list
        ]
        data_address = np.cumsum(
            np.asarray([len(b) for b in blobs], dtype=np.int64))
        data_bytes = np.concatenate(blobs) if blobs else np.zeros(
            0, dtype=np.uint8)
        self.data_list.clear()
        return data_bytes, data_address

    # ------------------------------------------------------------------ #
    # Decoded-image cache
    # ------------------------------------------------------------------ #
    def _check_image_cache_cfg(self, cfg: Optional[dict]) -> Optional[dict]:
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise TypeError(
                f'{type(self).__name__}: image_cache must be None or a dict '
                f'like dict(dir="cache", num_workers=8), but got {cfg!r}.')
        unknown = sorted(set(cfg) - {'dir', 'num_workers'})
        if unknown:
            raise ValueError(
                f'{type(self).__name__}: image_cache has unknown key(s) '
                f'{unknown}; it takes "dir" and "num_workers".')
        out = dict(dir='cache', num_workers=0)
        out.update(cfg)
        if not isinstance(out['dir'], str) or not out['dir']:
            raise ValueError(
                f'{type(self).__name__}: image_cache.dir must be a non-empty '
                f'folder path, but got {out["dir"]!r}.')
        if not isinstance(out['num_workers'], int) or out['num_workers'] < 0:
            raise ValueError(
                f'{type(self).__name__}: image_cache.num_workers must be an '
                f'int >= 0, but got {out["num_workers"]!r}.')
        return out

    def _cache_prefix_length(self) -> int:
        """Split the pipeline into the cached prefix and the rest.

        Sets ``self._after_cache`` (None when the cache is off) and returns
        the prefix length; raises when the cache is on but the pipeline
        starts with a transform it cannot store.
        """
        transforms = self.pipeline.transforms
        if self.image_cache_cfg is None or not transforms:
            # An empty pipeline lists files only (e.g. the tools' dataset
            # checks): nothing is decoded, so there is nothing to cache.
            self._after_cache = None
            return 0
        n = cacheable_prefix(transforms)
        if n == 0:
            first = transforms[0]
            raise ValueError(
                f'{self._cache_name()}: image_cache is on, but the pipeline '
                f'starts with {first!r}, which the cache cannot store. The '
                'cache stores the output of a leading LoadImageFromFile '
                '(to_float32=False) and fixed-size Resize(keep_ratio=False) '
                'transforms; start the pipeline with them or set '
                'image_cache=None.')
        self._after_cache = Compose(transforms[n:])
        return n

    def _cache_name(self) -> str:
        return f'{type(self).__name__}(split={self.split})'

    def _open_image_cache(self, items: List[dict]) -> None:
        """Build (once) or open the cache of ``items`` (the whole list)."""
        n = self._cache_prefix_length()
        cache_dir = self.image_cache_cfg['dir']
        if not osp.isabs(cache_dir):
            cache_dir = osp.join(self.data_root, cache_dir)
        self._image_cache = DecodedImageCache.prepare(
            items,
            self.pipeline.transforms[:n],
            cache_dir=cache_dir,
            data_root=self.data_root,
            name=self._cache_name(),
            num_workers=self.image_cache_cfg['num_workers'],
            file_tag=f'{type(self).__name__}-{self.split}')

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on item ``idx``; with the image cache on, the
        cached prefix is replaced by a copy of the stored image."""
        if self._image_cache is None:
            return super().prepare_data(idx)
        data_info = self.get_data_info(idx)
        results = self._image_cache.restore(
            data_info, int(self._fields['cache_index'][idx]))
        return self._after_cache(results)

    @staticmethod
    def _build_fields(data_list: List[dict]) -> Dict[str, np.ndarray]:
        return dict(
            gt_label=np.array([d['gt_label'] for d in data_list],
                              dtype=np.int64),
            modality=np.array([d['modality'] for d in data_list], dtype='<U3'),
            cam_id=np.array([d['cam_id'] for d in data_list], dtype=np.int64))

    # ------------------------------------------------------------------ #
    # Fast accessors
    # ------------------------------------------------------------------ #
    @force_full_init
    def get_labels(self) -> np.ndarray:
        """``gt_label`` of every item, shape (N,), int64."""
        return self._fields['gt_label'].copy()

    @force_full_init
    def get_modalities(self) -> np.ndarray:
        """``modality`` of every item (``'vis'`` / ``'ir'``), shape (N,)."""
        return self._fields['modality'].copy()

    @force_full_init
    def get_cam_ids(self) -> np.ndarray:
        """``cam_id`` of every item, shape (N,), int64."""
        return self._fields['cam_id'].copy()

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of item ``idx`` as a list (MMEngine's sampler API)."""
        return [int(self._fields['gt_label'][idx])]

    @force_full_init
    def get_data_list(self) -> List[dict]:
        """All items as plain dicts, in dataset order."""
        out = []
        for idx in range(len(self)):
            info = self.get_data_info(idx)
            info.pop('sample_idx', None)
            out.append(info)
        return out

    @property
    def num_classes(self) -> int:
        """Number of training identities (loads the data list if needed)."""
        if not self._fully_initialized:
            self.full_init()
        if 'num_classes' not in self._metainfo:
            raise AttributeError(
                f'{type(self).__name__}(split="{self.split}") has no '
                'num_classes: only the train split relabels identities.')
        return self._metainfo['num_classes']

    # ------------------------------------------------------------------ #
    # Subsets keep the cached arrays in sync.
    # ------------------------------------------------------------------ #
    def _copy_without_annotation(self, memo=None) -> 'BaseVIReIDDataset':
        """MMEngine's copy for ``get_subset``, with a fresh ``memo``.

        MMEngine declares ``memo=dict()`` as a default argument, so every
        call shares one dict that keeps ``id -> copy`` entries of objects
        long collected. Once Python reuses such an id for a new object (a
        transform of a later dataset), ``deepcopy`` returns the stale copy:
        a subset whose pipeline holds a dataset or another dataset's
        transform ("'SYSUMM01Dataset' object is not callable").
        """
        return super()._copy_without_annotation({} if memo is None else memo)

    @force_full_init
    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        keep = _subset_positions(indices, len(self))
        super().get_subset_(indices)
        self._fields = {k: v[keep] for k, v in self._fields.items()}

    @force_full_init
    def get_subset(self, indices: Union[Sequence[int],
                                        int]) -> 'BaseVIReIDDataset':
        keep = _subset_positions(indices, len(self))
        sub = super().get_subset(indices)
        sub._fields = {k: v[keep] for k, v in self._fields.items()}
        return sub

    def __repr__(self) -> str:
        lines = [
            f'{type(self).__name__}(data_root={self.data_root!r}, '
            f'split={self.split!r})'
        ]
        if self._fully_initialized:
            mods = self._fields['modality']
            num_vis = int((mods == VIS).sum())
            num_ids = len(np.unique(self._fields['gt_label']))
            lines.append(f'  images: {len(self)} (vis {num_vis}, ir '
                         f'{len(self) - num_vis}), identities: {num_ids}')
        else:
            lines.append('  not loaded yet (lazy_init=True)')
        if self._image_cache is not None:
            lines.append(f'  image cache: {self._image_cache.path}')
        return '\n'.join(lines)
