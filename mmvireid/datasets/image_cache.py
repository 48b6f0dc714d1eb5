# Copyright (c) mmvireid contributors. All rights reserved.
"""A decoded-once, memory-mapped cache of a dataset's resized images.

Every VI-ReID pipeline starts with ``LoadImageFromFile`` + a fixed-size
``Resize(keep_ratio=False)`` (PIL LANCZOS, as the reference code). Decoding
a JPEG and resizing it with LANCZOS costs several milliseconds per image, the
bulk of a training sample's CPU time, and gives the same array every epoch.
The AGW / CAJ reference code therefore trains SYSU-MM01 from ``.npy`` files
of pre-resized images. :class:`DecodedImageCache` does the same for any
dataset and pipeline:

* the **cacheable prefix** of the pipeline (see :func:`cacheable_prefix`) is
  run once per item, and its images are stored in dataset order in one
  uint8 ``.npy`` file of shape (N, H, W, C), next to the original
  (pre-resize) shapes (``<stem>.ori_shapes.npy``, (N, 2) int64) and a
  manifest (``<stem>.json``) saying what the cache holds;
* later runs memory-map the ``.npy`` (``mmap_mode='r'``): every DataLoader
  worker reads the same page cache, nothing is decoded again, and
  :meth:`DecodedImageCache.restore` gives the rest of the pipeline the very
  dict the prefix would have produced (``img``, ``img_shape``,
  ``ori_shape``, ``scale``, ``scale_factor``, ``keep_ratio``);
* the file name holds a hash of the relative image paths in order, their
  sizes and modification times, the prefix transforms' settings and the
  decoder library versions, so a changed dataset, split, pipeline or
  library never reads a stale cache (a new one is built instead);
* building writes temporary files and ``os.replace()`` s them into place, the
  image array last: a cache under its final name is always complete.
"""
import contextlib
import copy
import hashlib
import json
import os
import os.path as osp
import socket
import time
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import PIL
import torch.utils.data
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmcv.transforms import Resize
from mmengine import dist
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from .transforms.loading import LoadImageFromFile

__all__ = [
    'DecodedImageCache', 'cacheable_prefix', 'describe_prefix',
    'CACHE_FORMAT_VERSION'
]

#: Bumped whenever the files' layout or meaning changes (part of the key).
CACHE_FORMAT_VERSION = 1


#: The image loaders a cache may replace.
_LOADER_TYPES = (MMCVLoadImageFromFile, LoadImageFromFile)


def _is_cacheable(transform: Callable, position: int) -> bool:
    """Whether ``transform`` may be the ``position``-th prefix transform.

    Exact types only: a subclass may override ``transform()``, and then
    replaying its outputs from the cache would not be exact.
    """
    if position == 0:
        # uint8 images only; float32 would quadruple the file for nothing.
        return type(transform) in _LOADER_TYPES and \
            not transform.to_float32
    return (type(transform) is Resize and bool(transform.scale)
            and not transform.keep_ratio)


def cacheable_prefix(transforms: Sequence[Callable]) -> int:
    """Length of the deterministic, cacheable prefix of a pipeline.

    The prefix is a ``LoadImageFromFile`` (mmcv's or mmvireid's, with
    ``to_float32=False``) followed by any number of ``mmcv`` ``Resize`` with
    a fixed ``scale`` and ``keep_ratio=False``. Both are deterministic, use
    no random state, and give same-size uint8 images, so their output can
    be stored once. Any other transform ends the prefix.

    Args:
        transforms (Sequence[Callable]): Built transforms, e.g.
            ``dataset.pipeline.transforms``.

    Returns:
        int: Number of leading transforms in the prefix (0 if none).
    """
    n = 0
    for position, transform in enumerate(transforms):
        if not _is_cacheable(transform, position):
            break
        n += 1
    return n


def describe_prefix(transforms: Sequence[Callable]) -> List[dict]:
    """The settings of the prefix transforms that decide their output.

    Read from the built transforms (so a pipeline given as dicts or as
    objects gives the same description); part of the cache key and written
    to the manifest.
    """
    out = []
    for position, t in enumerate(transforms):
        if position == 0:
            out.append(
                dict(
                    type='LoadImageFromFile',
                    color_type=t.color_type,
                    imdecode_backend=t.imdecode_backend,
                    to_float32=t.to_float32))
        else:
            out.append(
                dict(
                    type='Resize',
                    scale=[int(s) for s in t.scale],
                    keep_ratio=bool(t.keep_ratio),
                    backend=t.backend,
                    interpolation=t.interpolation))
    return out


def _library_versions() -> dict:
    """Versions of the decoders / resizers: an upgrade may change pixels."""
    return dict(
        mmcv=mmcv.__version__, pillow=PIL.__version__, opencv=cv2.__version__)


def _identity(x):
    return x


class _PrefixDataset:
    """Runs the prefix on item ``i``; the map-style dataset of the build."""

    def __init__(self, items: Sequence[dict], transforms: Sequence[Callable],
                 name: str) -> None:
        self.items = items
        self.transforms = transforms
        self.name = name

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Tuple[int, np.ndarray, Tuple[int, int]]:
        results = run_transforms(self.transforms, self.items[i], self.name)
        return i, results['img'], tuple(results['ori_shape'])


def run_transforms(transforms: Sequence[Callable], item: dict,
                   name: str) -> dict:
    """Apply ``transforms`` to a copy of ``item``; a ``None`` (an image
    skipped by ``ignore_empty=True``) cannot be cached, so it raises."""
    results = copy.deepcopy(item)
    for t in transforms:
        results = t(results)
        if results is None:
            raise ValueError(
                f'{name}: image cache: {type(t).__name__} returned None for '
                f'"{item.get("img_path")}" (an unreadable image skipped by '
                'ignore_empty=True); the cache needs every image. Fix or '
                'remove the file, or turn the image cache off.')
    return results


class DecodedImageCache:
    """The decoded, resized images of one dataset in one memory-mapped file.

    Build or open one with :meth:`prepare`; then :meth:`restore` replaces the
    cached prefix of the pipeline for item ``pos`` of the cached list.

    The object pickles without the memory map (a few small arrays): each
    process (DataLoader worker, spawned or forked) opens the file itself on
    first use, read-only, so all of them share the OS page cache.

    Args:
        path (str): The image array, ``<dir>/<stem>.npy``.
        ori_shapes (np.ndarray): (N, 2) int64 ``(h, w)`` of every image
            before the resizes.
        transforms (Sequence[Callable]): The cached prefix transforms.
        img_shape (tuple): Shape of one cached image, e.g. (288, 144, 3).
    """

    def __init__(self, path: str, ori_shapes: np.ndarray,
                 transforms: Sequence[Callable], img_shape: tuple) -> None:
        self.path = path
        self.ori_shapes = ori_shapes
        # Replay data only: the resize scales (w, h), as the transforms hold
        # them (the very objects go into ``results['scale']``).
        self._scales = [t.scale for t in list(transforms)[1:]]
        self.img_shape = tuple(img_shape)
        self._images: Optional[np.ndarray] = None
        self._pid: Optional[int] = None

    # ------------------------------------------------------------------ #
    # Reading
    # ------------------------------------------------------------------ #
    def __len__(self) -> int:
        return len(self.ori_shapes)

    @property
    def images(self) -> np.ndarray:
        """The (N, H, W, C) uint8 memory map, opened once per process."""
        if self._images is None or self._pid != os.getpid():
            self._images = np.load(self.path, mmap_mode='r')
            self._pid = os.getpid()
        return self._images

    def __getstate__(self) -> dict:
        # Pickling a np.memmap copies the whole array: drop it, and let the
        # receiving process map the file again.
        state = self.__dict__.copy()
        state['_images'] = None
        state['_pid'] = None
        return state

    def restore(self, results: dict, pos: int) -> dict:
        """Fill ``results`` as the cached prefix would have.

        Args:
            results (dict): The item (``img_path``, labels, ...).
            pos (int): Position of the item in the cached list.

        Returns:
            dict: ``results`` with ``img`` (a writable copy, (H, W, C)
            uint8), ``img_shape`` and ``ori_shape`` as set by
            ``LoadImageFromFile``, then ``scale``, ``img_shape``,
            ``scale_factor`` and ``keep_ratio`` as set by each ``Resize``
            (in the same key order).
        """
        # np.array copies: the pipeline may write into the image in place.
        img = np.array(self.images[pos])
        h, w = self.ori_shapes[pos]
        shape = (int(h), int(w))
        results['img'] = img
        results['img_shape'] = shape
        results['ori_shape'] = shape
        for scale in self._scales:
            # mmcv.imresize: w_scale = new_w / w, h_scale = new_h / h.
            results['scale'] = scale
            results['img'] = img
            new_shape = (int(scale[1]), int(scale[0]))
            results['img_shape'] = new_shape
            results['scale_factor'] = (scale[0] / shape[1],
                                       scale[1] / shape[0])
            results['keep_ratio'] = False
            shape = new_shape
        return results

    # ------------------------------------------------------------------ #
    # Finding or building
    # ------------------------------------------------------------------ #
    @classmethod
    def prepare(cls,
                items: Sequence[dict],
                transforms: Sequence[Callable],
                cache_dir: str,
                data_root: str,
                name: str,
                num_workers: int = 0,
                file_tag: Optional[str] = None) -> 'DecodedImageCache':
        """Open the cache of ``items``, building it first if needed.

        Under ``torch.distributed`` every rank must call this (the Runner
        builds each dataset on every rank): local rank 0 of each node builds
        a missing cache while the others wait, then all open it. Inside a
        DataLoader worker (a ``lazy_init`` dataset initialised there) no
        collective is used; concurrent builders are safe, as each writes
        its own temporary files and the final ``os.replace`` is atomic.

        Args:
            items (Sequence[dict]): The dataset items in order; each has
                ``img_path``.
            transforms (Sequence[Callable]): The cacheable prefix (see
                :func:`cacheable_prefix`), at least one transform.
            cache_dir (str): Folder of the cache files (created if needed).
            data_root (str): Root the image paths are made relative to.
            name (str): The dataset, e.g. ``'SYSUMM01Dataset(split=train)'``,
                for messages and the manifest.
            num_workers (int): Processes decoding images in a build.
                Defaults to 0 (this process).
            file_tag (str, optional): Readable start of the file names,
                e.g. ``'SYSUMM01Dataset-train'``; the key hash follows.
                Defaults to ``name`` with odd characters replaced.

        Returns:
            DecodedImageCache: The opened cache, checked against the
            pipeline on its first item.
        """
        transforms = list(transforms)
        if not transforms or cacheable_prefix(transforms) != len(transforms):
            raise ValueError(
                f'{name}: image cache: {transforms!r} is not a cacheable '
                'prefix (see mmvireid.datasets.image_cache.cacheable_prefix).')
        rel_paths, key_info = _key_info(items, transforms, data_root, name)
        key = hashlib.sha256(
            json.dumps(key_info, sort_keys=True).encode()).hexdigest()
        stem = osp.join(cache_dir, f'{_safe(file_tag or name)}-{key[:16]}')

        def build_if_missing():
            reason = _why_not_usable(stem, key, len(items))
            if reason is not None:
                print_log(
                    f'{name}: image cache {stem}.npy {reason}; decoding '
                    f'{len(items)} images once ({num_workers} workers).',
                    logger='current')
                _build(stem, key, items, rel_paths, key_info, transforms,
                       name, num_workers)

        _collective_build(build_if_missing, name)
        reason = _why_not_usable(stem, key, len(items))
        if reason is not None:
            raise RuntimeError(
                f'{name}: image cache {stem}.npy {reason} after it was '
                'built. A rank on another node than the builder cannot see '
                'its files: put image_cache.dir on a folder shared by all '
                'nodes, or launch with torchrun / slurm (LOCAL_RANK set) so '
                'that every node builds its own copy.')
        ori_shapes = np.load(f'{stem}.ori_shapes.npy')
        img_shape = np.load(f'{stem}.npy', mmap_mode='r').shape[1:]
        cache = cls(f'{stem}.npy', ori_shapes, transforms, img_shape)
        cache._check_first_item(items[0], transforms, name)
        return cache

    def _check_first_item(self, item: dict, transforms: Sequence[Callable],
                          name: str) -> None:
        """Compare the restored first item with the prefix run for real.

        One decode per dataset construction; catches a file rewritten with
        the same size and time stamp, or a transform whose outputs the
        replay in :meth:`restore` does not reproduce.
        """
        expected = run_transforms(transforms, item, name)
        got = self.restore(copy.deepcopy(item), 0)
        problem = None
        if list(got) != list(expected):
            problem = f'keys {list(got)} instead of {list(expected)}'
        else:
            for k, v in expected.items():
                if isinstance(v, np.ndarray):
                    same = (v.dtype == got[k].dtype and v.shape == got[k].shape
                            and np.array_equal(v, got[k]))
                else:
                    same = type(v) is type(got[k]) and v == got[k]
                if not same:
                    problem = f'"{k}" differs'
                    break
        if problem is not None:
            raise RuntimeError(
                f'{name}: the image cache {self.path} does not match the '
                f'pipeline on "{item.get("img_path")}" ({problem}). The '
                'image file was probably rewritten with the same size and '
                'time stamp; delete the cache file (and its .json / '
                '.ori_shapes.npy) to rebuild it.')


def _safe(name: str) -> str:
    """``name`` usable in a file name (letters, digits, ``-_.=``)."""
    return ''.join(c if c.isalnum() or c in '-_.=' else '_'
                   for c in name).strip('_')


def _key_info(items: Sequence[dict], transforms: Sequence[Callable],
              data_root: str, name: str) -> Tuple[List[str], dict]:
    """Everything the cached images depend on, hashed into the file name.

    One ``os.stat`` per image (size and modification time in ns): a
    replaced or edited image invalidates the cache without reading it.
    """
    rel_paths, stamps = [], hashlib.sha256()
    for item in items:
        path = item['img_path']
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'{name}: image file "{path}" does not exist (listed by the '
                'dataset; check data_root and the split/index files).'
            ) from None
        rel = osp.relpath(path, data_root)
        rel_paths.append(rel)
        stamps.update(f'{rel}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    info = dict(
        format=CACHE_FORMAT_VERSION,
        prefix=describe_prefix(transforms),
        versions=_library_versions(),
        files=stamps.hexdigest())
    return rel_paths, info


def _why_not_usable(stem: str, key: str, num_images: int) -> Optional[str]:
    """None when the cache at ``stem`` is complete and holds ``key``;
    otherwise a few words saying why it is not."""
    if not osp.isfile(f'{stem}.npy'):
        return 'does not exist yet'
    try:
        with open(f'{stem}.json') as f:
            manifest = json.load(f)
        shape = np.load(f'{stem}.npy', mmap_mode='r').shape
        num_shapes = len(np.load(f'{stem}.ori_shapes.npy', mmap_mode='r'))
    except (OSError, ValueError, KeyError) as e:
        return f'is unreadable ({type(e).__name__}: {e})'
    if manifest.get('key') != key or shape[0] != num_images or \
            num_shapes != num_images or list(shape) != manifest.get('shape'):
        return 'does not match its manifest'
    return None


def _collective_build(build_if_missing: Callable[[], None],
                      name: str) -> None:
    """Run ``build_if_missing`` on local rank 0 of every node; the other
    ranks wait, and a failure is raised on every rank (none hangs)."""
    in_worker = torch.utils.data.get_worker_info() is not None
    if in_worker or not dist.is_distributed():
        build_if_missing()
        return
    error = None
    if _local_rank(dist) == 0:
        try:
            build_if_missing()
        except Exception as e:
            error = e
    # A collective both as a barrier and to share the outcome.
    outcomes = dist.all_gather_object(
        None if error is None else f'{type(error).__name__}: {error}')
    if error is not None:
        raise error
    failed = [(rank, msg) for rank, msg in enumerate(outcomes) if msg]
    if failed:
        rank, msg = failed[0]
        raise RuntimeError(
            f'{name}: building the image cache failed on rank {rank}: {msg}')


def _local_rank(dist) -> int:
    """The rank within the node: ``LOCAL_RANK`` (set by torchrun and by
    MMEngine's slurm launcher), else the global rank (then only rank 0
    builds). ``mmengine.dist.get_local_rank`` needs a local process group
    that MMEngine's launchers do not create."""
    value = os.environ.get('LOCAL_RANK', '')
    return int(value) if value.isdigit() else dist.get_rank()


def _build(stem: str, key: str, items: Sequence[dict], rel_paths: List[str],
           key_info: dict, transforms: Sequence[Callable], name: str,
           num_workers: int) -> None:
    """Decode every item into temporary files, then move them into place.

    The image array is moved last, so its final name appears only once the
    shapes and the manifest are there; on any failure the temporary files
    are removed and no file with the final name is written.
    """
    os.makedirs(osp.dirname(stem) or '.', exist_ok=True)
    # Unique per process and host: several builders may share the folder.
    tag = f'tmp-{socket.gethostname()}-{os.getpid()}'
    tmp = {
        ext: f'{stem}.{tag}{ext}'
        for ext in ('.npy', '.ori_shapes.npy', '.json')
    }
    dataset = _PrefixDataset(items, transforms, name)
    start = time.perf_counter()
    try:
        first = dataset[0][1]
        if first.dtype != np.uint8:
            raise ValueError(
                f'{name}: image cache: "{items[0]["img_path"]}" gives a '
                f'{first.dtype} image; only uint8 images are cached.')
        shape = (len(items), ) + first.shape
        print_log(
            f'{name}: writing {np.prod(shape) / 1e9:.2f} GB of '
            f'{first.shape} uint8 images to {stem}.npy',
            logger='current')
        # The .npy header is written through a memory map, the images
        # through a plain file handle: pages written through a map count in
        # the process's resident set until write-back, so a 4 GB SYSU cache
        # at 288x144 peaked at 4.7 GB RSS (docs/en/benchmarks.md, scale
        # rehearsal); written with os-level writes they are page cache only.
        header = np.lib.format.open_memmap(
            tmp['.npy'], mode='w+', dtype=np.uint8, shape=shape)
        offset = header.offset
        del header
        item_bytes = int(np.prod(first.shape))
        ori_shapes = np.zeros((len(items), 2), dtype=np.int64)
        progress = ProgressBar(len(items))
        # closing(): on an error, the worker processes stop right away
        # instead of whenever the suspended generator is collected.
        stream = contextlib.closing(_iterate(dataset, num_workers))
        with stream as decoded, open(tmp['.npy'], 'r+b') as images:
            for i, img, ori_shape in decoded:
                if img.shape != first.shape or img.dtype != np.uint8:
                    raise ValueError(
                        f'{name}: image cache: "{items[i]["img_path"]}" '
                        f'gives a {img.dtype} image of shape {img.shape} '
                        f'after {[type(t).__name__ for t in transforms]}, '
                        f'but "{items[0]["img_path"]}" gives {first.shape} '
                        'uint8. All cached images need one shape: put a '
                        'fixed-size Resize(keep_ratio=False) right after '
                        'LoadImageFromFile.')
                images.seek(offset + i * item_bytes)
                images.write(np.ascontiguousarray(img).data)
                ori_shapes[i] = ori_shape
                progress.update()
        np.save(tmp['.ori_shapes.npy'], ori_shapes)
        manifest = dict(
            key=key,
            dataset=name,
            shape=list(shape),
            dtype='uint8',
            num_images=len(items),
            prefix=key_info['prefix'],
            versions=key_info['versions'],
            format=key_info['format'],
            created=time.strftime('%Y-%m-%d %H:%M:%S'),
            build_seconds=round(time.perf_counter() - start, 1),
            images=rel_paths)
        with open(tmp['.json'], 'w') as f:
            json.dump(manifest, f, indent=1)
        os.replace(tmp['.ori_shapes.npy'], f'{stem}.ori_shapes.npy')
        os.replace(tmp['.json'], f'{stem}.json')
        os.replace(tmp['.npy'], f'{stem}.npy')
    finally:
        for path in tmp.values():
            if osp.exists(path):
                os.remove(path)
    print_log(
        f'\n{name}: image cache written in '
        f'{time.perf_counter() - start:.0f} s.',
        logger='current')


def _iterate(dataset: _PrefixDataset, num_workers: int):
    """``(i, img, ori_shape)`` for every item in order."""
    if num_workers <= 0:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # one item at a time, as numpy arrays
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity)
    iterator = iter(loader)
    try:
        yield from iterator
    finally:
        # Stop the workers now, also when the build fails half-way: the
        # error's traceback would keep the iterator (and its processes)
        # alive until the error itself is freed.
        shutdown = getattr(iterator, '_shutdown_workers', None)
        if shutdown is not None:
            shutdown()
