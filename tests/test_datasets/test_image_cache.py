# Copyright (c) mmvireid contributors. All rights reserved.
"""The decoded-once image cache: same outputs as decoding every time, a new
cache for changed data or pipelines, atomic builds, clear errors."""
import copy
import glob
import json
import os
import os.path as osp
import pickle
import shutil

import mmengine.dist
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed
from PIL import Image
from toy_utils import make_toy_dataset

from mmvireid.datasets import SYSUMM01Dataset
from mmvireid.datasets.image_cache import (DecodedImageCache,
                                           _collective_build, cacheable_prefix,
                                           run_transforms)
from mmvireid.datasets.transforms import CorruptImageError
from mmvireid.registry import DATASETS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PIPELINES = Config.fromfile(
    osp.join(REPO_ROOT, 'configs/_base_/datasets/vireid_pipelines_288x144.py'))
TRAIN_PIPELINE = PIPELINES.train_pipeline
TEST_PIPELINE = PIPELINES.test_pipeline


@pytest.fixture(scope='module')
def pristine_root(tmp_path_factory):
    """4 toy identities in the SYSU layout (2 train, 2 test), 128x64."""
    return make_toy_dataset(
        'sysu', tmp_path_factory.mktemp('cache_toy') / 'sysu', num_ids=4)


@pytest.fixture
def root(pristine_root, tmp_path):
    """A private copy: tests edit images and write caches into it."""
    dst = str(tmp_path / 'sysu')
    shutil.copytree(pristine_root, dst)
    return dst


def build(root, pipeline, image_cache=None, **kwargs):
    kwargs.setdefault('split', 'train')
    with DefaultScope.overwrite_default_scope('mmvireid'):
        return DATASETS.build(
            dict(
                type='SYSUMM01Dataset',
                data_root=root,
                pipeline=copy.deepcopy(pipeline),
                image_cache=image_cache,
                **kwargs))


def cache_files(root, ext='.npy'):
    return sorted(
        f for f in glob.glob(osp.join(root, 'cache', '*' + ext))
        if not f.endswith('.ori_shapes.npy'))


def assert_same_sample(a, b):
    assert torch.equal(a['inputs'], b['inputs'])
    assert a['inputs'].dtype == b['inputs'].dtype
    assert a['data_samples'].metainfo == b['data_samples'].metainfo
    assert torch.equal(a['data_samples'].gt_label, b['data_samples'].gt_label)


def assert_same_outputs(plain, cached, seeded=False):
    assert len(plain) == len(cached)
    for idx in range(len(plain)):
        if seeded:
            set_random_seed(idx)
        a = plain[idx]
        if seeded:
            set_random_seed(idx)
        b = cached[idx]
        assert_same_sample(a, b)


# ---------------------------------------------------------------------- #
# Bit identity
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('split', ['train', 'test'])
def test_test_pipeline_is_bit_identical(root, split):
    plain = build(root, TEST_PIPELINE, split=split)
    cached = build(root, TEST_PIPELINE, dict(dir='cache'), split=split)
    assert cached._image_cache is not None
    assert_same_outputs(plain, cached)
    # The prefix's whole output dict, key order and value types included
    # (scale_factor, keep_ratio, ... are not packed, but a later transform
    # could read them).
    prefix = plain.pipeline.transforms[:2]
    for idx in range(len(plain)):
        info = plain.get_data_info(idx)
        expected = run_transforms(prefix, info, 'test')
        got = cached._image_cache.restore(copy.deepcopy(info), idx)
        assert list(got) == list(expected)
        for k, v in expected.items():
            if isinstance(v, np.ndarray):
                assert got[k].dtype == v.dtype and got[k].flags.writeable
                np.testing.assert_array_equal(got[k], v)
            else:
                assert type(got[k]) is type(v) and got[k] == v, k


def test_train_pipeline_is_bit_identical_with_the_same_seed(root):
    plain = build(root, TRAIN_PIPELINE)
    cached = build(root, TRAIN_PIPELINE, dict(dir='cache', num_workers=2))
    assert_same_outputs(plain, cached, seeded=True)
    # The random augmentations do draw: two seeds give different images.
    set_random_seed(0)
    first = cached[0]['inputs']
    set_random_seed(1)
    assert not torch.equal(first, cached[0]['inputs'])


def test_cache_file_content_and_sharing(root):
    """Train and feature-cache (test) pipelines share the train file; the
    test split has its own; the manifest says what the file holds."""
    train = build(root, TRAIN_PIPELINE, dict(dir='cache'))
    build(root, TEST_PIPELINE, dict(dir='cache'))  # same prefix
    test = build(root, TEST_PIPELINE, dict(dir='cache'), split='test')
    files = cache_files(root)
    assert len(files) == 2
    assert train._image_cache.path in files
    assert test._image_cache.path in files
    with open(train._image_cache.path[:-4] + '.json') as f:
        manifest = json.load(f)
    assert manifest['images'] == [
        osp.relpath(train.get_data_info(i)['img_path'], root)
        for i in range(len(train))
    ]
    assert manifest['shape'] == [len(train), 288, 144, 3]
    assert manifest['prefix'][1] == dict(
        type='Resize',
        scale=[144, 288],
        keep_ratio=False,
        backend='pillow',
        interpolation='lanczos')
    images = np.load(train._image_cache.path, mmap_mode='r')
    assert images.dtype == np.uint8 and images.shape == (len(train), 288,
                                                         144, 3)
    ori = np.load(train._image_cache.path[:-4] + '.ori_shapes.npy')
    np.testing.assert_array_equal(ori, np.tile([128, 64], (len(train), 1)))


def test_absolute_dir_and_build_with_workers(root, tmp_path):
    in_process = build(root, TEST_PIPELINE, dict(dir='cache'))
    elsewhere = str(tmp_path / 'elsewhere')
    workers = build(root, TEST_PIPELINE, dict(dir=elsewhere, num_workers=2))
    assert osp.dirname(workers._image_cache.path) == elsewhere
    np.testing.assert_array_equal(
        np.load(in_process._image_cache.path),
        np.load(workers._image_cache.path))


# ---------------------------------------------------------------------- #
# Staleness
# ---------------------------------------------------------------------- #
def with_size(pipeline, h, w):
    pipeline = copy.deepcopy(pipeline)
    pipeline[1]['scale'] = (w, h)
    return pipeline


def test_changed_pipeline_builds_a_new_cache(root):
    build(root, TEST_PIPELINE, dict(dir='cache'))
    first = cache_files(root)
    small = with_size(TEST_PIPELINE, 64, 32)
    cached = build(root, small, dict(dir='cache'))
    files = cache_files(root)
    assert len(files) == 2 and first[0] in files
    assert cached._image_cache.path != first[0]
    assert cached[0]['inputs'].shape == (3, 64, 32)
    assert_same_outputs(build(root, small), cached)
    # Another interpolation is another cache, too.
    bicubic = copy.deepcopy(TEST_PIPELINE)
    bicubic[1]['interpolation'] = 'bicubic'
    build(root, bicubic, dict(dir='cache'))
    assert len(cache_files(root)) == 3


def test_changed_image_builds_a_new_cache(root):
    old = build(root, TEST_PIPELINE, dict(dir='cache'))
    idx = 3
    path = old.get_data_info(idx)['img_path']
    old_img = old[idx]['inputs']
    Image.new('RGB', (50, 100), (10, 200, 30)).save(path, quality=95)
    new = build(root, TEST_PIPELINE, dict(dir='cache'))
    assert new._image_cache.path != old._image_cache.path
    assert len(cache_files(root)) == 2
    assert_same_outputs(build(root, TEST_PIPELINE), new)
    assert not torch.equal(new[idx]['inputs'], old_img)
    assert new[idx]['data_samples'].ori_shape == (100, 50)


def test_image_rewritten_with_same_size_and_time_is_caught(root):
    """A file swapped for another of equal size and mtime keeps the key;
    the first-item check against the real pipeline catches it."""
    first = build(root, TEST_PIPELINE, dict(dir='cache'))
    paths = [first.get_data_info(i)['img_path'] for i in range(len(first))]
    target = paths[0]
    size = os.path.getsize(target)
    donor = next(p for p in paths[1:] if os.path.getsize(p) < size)
    st = os.stat(target)
    with open(donor, 'rb') as f:
        data = f.read()
    with open(target, 'wb') as f:  # JPEG decoders ignore bytes after EOI
        f.write(data + b'\0' * (size - len(data)))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(RuntimeError, match='does not match the pipeline on '
                       f'"{target}"'):
        build(root, TEST_PIPELINE, dict(dir='cache'))


# ---------------------------------------------------------------------- #
# Errors and atomic builds
# ---------------------------------------------------------------------- #
def test_pipeline_without_cacheable_prefix(root):
    pipeline = [dict(type='RandomFlip', prob=0.5)] + TEST_PIPELINE
    for lazy in (False, True):
        with pytest.raises(ValueError) as e:
            build(root, pipeline, dict(dir='cache'), lazy_init=lazy)
        msg = str(e.value)
        assert msg.startswith('SYSUMM01Dataset(split=train): image_cache is '
                              'on, but the pipeline starts with RandomFlip(')
        assert 'set image_cache=None' in msg
    # float32 images are not cached either.
    pipeline = copy.deepcopy(TEST_PIPELINE)
    pipeline[0]['to_float32'] = True
    with pytest.raises(ValueError, match='starts with LoadImageFromFile'):
        build(root, pipeline, dict(dir='cache'))
    assert not osp.exists(osp.join(root, 'cache'))


def test_prefix_detection():
    with DefaultScope.overwrite_default_scope('mmvireid'):
        train = build_transforms(TRAIN_PIPELINE)
        keep_ratio = build_transforms(TEST_PIPELINE[:1] + [
            dict(type='Resize', scale=(144, 288), keep_ratio=True)
        ])
    assert cacheable_prefix(train) == 2
    assert cacheable_prefix(train[1:]) == 0  # must start with the loader
    assert cacheable_prefix(train[:1] + train[1:2] * 2 + train[2:]) == 3
    assert cacheable_prefix(keep_ratio) == 1


def build_transforms(cfgs):
    from mmengine.dataset import Compose
    return Compose(copy.deepcopy(cfgs)).transforms


def test_empty_pipeline_turns_the_cache_off(root):
    """Dataset checks build datasets with pipeline=[] (file lists only)."""
    dataset = build(root, [], dict(dir='cache'))
    assert dataset._image_cache is None
    assert dataset[0]['img_path'].startswith(root)
    assert not osp.exists(osp.join(root, 'cache'))


def test_bad_image_cache_settings(root):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['workers'\]"):
        build(root, TEST_PIPELINE, dict(dir='cache', workers=2))
    with pytest.raises(ValueError, match='num_workers must be an int >= 0'):
        build(root, TEST_PIPELINE, dict(num_workers=-1))
    with pytest.raises(TypeError, match='image_cache must be None or a dict'):
        build(root, TEST_PIPELINE, 'cache')


@pytest.mark.parametrize('num_workers', [0, 2])
def test_failed_build_leaves_no_cache_file(root, num_workers):
    plain = build(root, TEST_PIPELINE)
    bad = plain.get_data_info(5)['img_path']
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg at all')
    with pytest.raises(CorruptImageError, match=f'"{bad}"'):
        build(root, TEST_PIPELINE, dict(dir='cache', num_workers=num_workers))
    # Neither the final names nor temporaries are left behind.
    assert os.listdir(osp.join(root, 'cache')) == []
    Image.new('RGB', (64, 128)).save(bad)
    cached = build(root, TEST_PIPELINE, dict(dir='cache'))
    assert_same_outputs(build(root, TEST_PIPELINE), cached)


def test_images_of_different_shapes_name_the_file(root):
    plain = build(root, TEST_PIPELINE)
    odd = plain.get_data_info(7)['img_path']
    Image.new('RGB', (40, 90)).save(odd)
    with pytest.raises(ValueError) as e:
        build(root, TEST_PIPELINE[:1], dict(dir='cache'))
    msg = str(e.value)
    assert f'"{odd}" gives a uint8 image of shape (90, 40, 3)' in msg
    assert 'put a fixed-size Resize(keep_ratio=False)' in msg
    assert os.listdir(osp.join(root, 'cache')) == []
    # With the resize the odd image is fine (and its original shape kept).
    cached = build(root, TEST_PIPELINE, dict(dir='cache'))
    assert cached[7]['data_samples'].ori_shape == (90, 40)
    assert_same_outputs(build(root, TEST_PIPELINE), cached)


# ---------------------------------------------------------------------- #
# Subsets, lazy init, serialisation, pickling
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize('serialize_data', [True, False])
def test_subsets_and_indices(root, serialize_data):
    """Subsets of a cached dataset equal the same subsets uncached."""
    cfg = dict(dir='cache')
    kwargs = dict(serialize_data=serialize_data)
    picked = [9, 2, 30, -1]
    sub = build(root, TEST_PIPELINE, cfg, indices=picked, **kwargs)
    assert_same_outputs(
        build(root, TEST_PIPELINE, indices=picked, **kwargs), sub)
    full = build(root, TEST_PIPELINE, **kwargs)
    assert torch.equal(sub[2]['inputs'], full[30]['inputs'])
    cached = build(root, TEST_PIPELINE, cfg, **kwargs)
    # indices=... and the whole list share one cache file.
    assert cached._image_cache.path == sub._image_cache.path
    assert len(cache_files(root)) == 1
    for indices in ([5, 1, 5], 3, -2):
        assert_same_outputs(
            full.get_subset(indices), cached.get_subset(indices))
        plain = build(root, TEST_PIPELINE, **kwargs)
        plain.get_subset_(indices)
        inplace = build(root, TEST_PIPELINE, cfg, **kwargs)
        inplace.get_subset_(indices)
        assert_same_outputs(plain, inplace)
    # A subset of a subset.
    assert torch.equal(sub.get_subset([2])[0]['inputs'], full[30]['inputs'])


def test_lazy_init(root):
    dataset = build(root, TEST_PIPELINE, dict(dir='cache'), lazy_init=True)
    assert not osp.exists(osp.join(root, 'cache'))  # nothing decoded yet
    dataset.full_init()
    assert len(cache_files(root)) == 1
    lazy_subset = build(
        root, TEST_PIPELINE, dict(dir='cache'), lazy_init=True, indices=[4])
    assert_same_outputs(
        build(root, TEST_PIPELINE, lazy_init=True, indices=[4]), lazy_subset)


def test_pickling_drops_the_memory_map(root):
    plain = build(root, TEST_PIPELINE)
    cached = build(root, TEST_PIPELINE, dict(dir='cache'))
    cached[0]  # opens the memory map in this process
    assert cached._image_cache._images is not None
    blob = pickle.dumps(cached)
    # The images are ~4 MB; the pickle holds the item list and shapes only.
    assert len(blob) < os.path.getsize(cached._image_cache.path) / 10
    clone = pickle.loads(blob)
    assert clone._image_cache._images is None
    assert_same_outputs(plain, clone)
    assert isinstance(clone._image_cache.images, np.memmap)
    # A deep copy (as get_subset makes) does not copy the images either.
    assert copy.deepcopy(cached)._image_cache._images is None


def test_dataloader_workers(root):
    plain = build(root, TEST_PIPELINE)
    cached = build(root, TEST_PIPELINE, dict(dir='cache'))
    loader = torch.utils.data.DataLoader(
        cached,
        batch_size=8,
        num_workers=2,
        collate_fn=lambda batch: batch)
    seen = [sample for batch in loader for sample in batch]
    assert len(seen) == len(plain)
    for idx, sample in enumerate(seen):
        assert_same_sample(sample, plain[idx])


# ---------------------------------------------------------------------- #
# Distributed: local rank 0 builds, a failure reaches every rank
# ---------------------------------------------------------------------- #
def fake_dist(monkeypatch, local_rank, outcomes):
    gathered = []

    def all_gather_object(obj):
        gathered.append(obj)
        return [obj if rank == local_rank else other
                for rank, other in enumerate(outcomes)]

    monkeypatch.setattr(mmengine.dist, 'is_distributed', lambda: True)
    monkeypatch.setenv('LOCAL_RANK', str(local_rank))
    monkeypatch.setattr(mmengine.dist, 'all_gather_object', all_gather_object)
    return gathered


def test_distributed_builder_and_waiters(monkeypatch):
    calls = []
    gathered = fake_dist(monkeypatch, 0, [None, None])
    _collective_build(lambda: calls.append('built'), 'D')
    assert calls == ['built'] and gathered == [None]
    # Rank 1 waits for rank 0 and does not build.
    gathered = fake_dist(monkeypatch, 1, [None, None])
    _collective_build(lambda: calls.append('again'), 'D')
    assert calls == ['built'] and gathered == [None]
    # Rank 0 failed: rank 1 raises instead of waiting forever.
    fake_dist(monkeypatch, 1, ['OSError: disk full', None])
    with pytest.raises(RuntimeError,
                       match='D: building the image cache failed on rank 0: '
                       'OSError: disk full'):
        _collective_build(lambda: None, 'D')

    # The builder re-raises its own error after sharing it.
    def fail():
        raise OSError('disk full')

    gathered = fake_dist(monkeypatch, 0, [None, None])
    with pytest.raises(OSError, match='disk full'):
        _collective_build(fail, 'D')
    assert gathered == ['OSError: disk full']


def test_waiting_rank_without_the_file(root, monkeypatch):
    """A rank whose node cannot see the builder's file says so."""
    fake_dist(monkeypatch, 1, [None, None])
    with pytest.raises(RuntimeError, match='does not exist yet after it was '
                       'built'):
        build(root, TEST_PIPELINE, dict(dir='cache'))


def test_cache_object_is_small_and_typed(root):
    cached = build(root, TEST_PIPELINE, dict(dir='cache'))
    cache = cached._image_cache
    assert isinstance(cache, DecodedImageCache)
    assert len(cache) == len(cached) and cache.img_shape == (288, 144, 3)
    assert isinstance(cached, SYSUMM01Dataset)
    assert 'image cache: ' + cache.path in repr(cached)
