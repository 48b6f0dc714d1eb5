# Copyright (c) mmvireid contributors. All rights reserved.
"""Tests of the VI-ReID transforms: CAJ channel augmentations (against
reference-style versions on the normalised tensor, seeded alike), modality
dispatch and packing."""
import math
import random

import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from mmvireid.datasets.transforms import (ChannelAdapGray, ChannelExchange,
                                          ChannelRandomErasing,
                                          ModalityDispatch, PackVIReIDInputs)
from mmvireid.registry import TRANSFORMS

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ERASE_MEAN = (0.4914, 0.4822, 0.4465)


def normalise(img_bgr):
    """BGR uint8 H x W x 3 -> normalised RGB 3 x H x W (ToTensor+Normalize)."""
    rgb = torch.from_numpy(img_bgr[..., ::-1].copy()).permute(2, 0, 1)
    rgb = rgb.double() / 255.
    return (rgb - torch.tensor(MEAN)[:, None,
                                     None]) / torch.tensor(STD)[:, None, None]


# Reference-style CAJ transforms on a normalised 3 x H x W tensor, written
# after the public ChannelAug/processing code (same random calls, same order).


def ref_erasing(t, prob=0.5, sl=0.02, sh=0.4, r1=0.3, mean=ERASE_MEAN):
    """Returns the tensor and the erased (top, left, h, w) or None."""
    if random.uniform(0, 1) > prob:
        return t, None
    for _ in range(100):
        area = t.shape[1] * t.shape[2]
        target = random.uniform(sl, sh) * area
        ratio = random.uniform(r1, 1 / r1)
        h = int(round(math.sqrt(target * ratio)))
        w = int(round(math.sqrt(target / ratio)))
        if w < t.shape[2] and h < t.shape[1]:
            top = random.randint(0, t.shape[1] - h)
            left = random.randint(0, t.shape[2] - w)
            for c in range(3):
                t[c, top:top + h, left:left + w] = mean[c]
            return t, (top, left, h, w)
    return t, None


def ref_copy(t, idx):
    for c in range(3):
        if c != idx:
            t[c] = t[idx]
    return t


def ref_gray(t):
    g = 0.2989 * t[0] + 0.5870 * t[1] + 0.1140 * t[2]
    t[0], t[1], t[2] = g, g.clone(), g.clone()
    return t


def ref_exchange(t, gray=2):
    idx = random.randint(0, gray)
    return ref_copy(t, idx) if idx <= 2 else ref_gray(t)


def ref_adap_gray(t, prob=0.5):
    idx = random.randint(0, 3)
    if idx <= 2:
        return ref_copy(t, idx)
    if random.uniform(0, 1) > prob:
        return t
    return ref_gray(t)


def rand_img(low=0, high=256, shape=(32, 16, 3), seed=0):
    return np.random.RandomState(seed).randint(low, high,
                                               shape).astype(np.uint8)


# ---------------------------------------------------------------------------
# ChannelRandomErasing
# ---------------------------------------------------------------------------


def test_erasing_fills_the_reference_rectangle():
    img = rand_img()
    # (mean * std + norm_mean) * 255 per RGB channel: 152.37, 143.82, 129.15
    # -> rounded (152, 144, 129), written in BGR order.
    assert ChannelRandomErasing().fill_rgb == pytest.approx(
        (152.3703, 143.8233, 129.1479), abs=1e-4)
    fill_bgr = np.array([129, 144, 152], dtype=np.uint8)
    erased = 0
    for seed in range(12):
        random.seed(seed)
        _, rect = ref_erasing(normalise(img))
        random.seed(seed)
        out = ChannelRandomErasing(prob=0.5)(dict(img=img.copy()))['img']
        assert out.dtype == np.uint8 and out.shape == img.shape
        inside = np.zeros(img.shape[:2], bool)
        if rect is not None:
            top, left, h, w = rect
            inside[top:top + h, left:left + w] = True
            erased += 1
        assert (out[inside] == fill_bgr).all()
        np.testing.assert_array_equal(out[~inside], img[~inside])
    assert 0 < erased < 12  # prob 0.5 erased some images, not all


def test_erasing_equals_reference_after_normalisation():
    img = rand_img(seed=1)
    for seed in range(6):
        random.seed(seed)
        ref, _ = ref_erasing(normalise(img), prob=1.)
        random.seed(seed)
        out = ChannelRandomErasing(prob=1.)(dict(img=img))['img']
        # identical up to the uint8 rounding of the fill (< 0.5 / 255 / std)
        torch.testing.assert_close(
            normalise(out), ref, rtol=0, atol=0.5 / 255 / min(STD) + 1e-9)


def test_erasing_options_and_edge_cases():
    img = rand_img(seed=2)
    random.seed(0)
    assert ChannelRandomErasing(prob=0.)(dict(img=img))['img'] is img
    # A plain colour with identity normalisation; RGB channel order.
    random.seed(3)
    t = ChannelRandomErasing(
        prob=1.,
        mean=(1., 0., 0.),
        norm_mean=(0, 0, 0),
        norm_std=(1, 1, 1),
        channel_order='rgb')
    out = t(dict(img=img.copy()))['img']
    changed = (out != img).any(-1)
    assert changed.any() and (out[changed] == [255, 0, 0]).all()
    # Grey-level image: one channel, filled with the first value.
    gray = img[..., 0].copy()
    random.seed(3)
    out = ChannelRandomErasing(prob=1.)(dict(img=gray))['img']
    assert out.shape == gray.shape and set(out[out != gray].tolist()) <= {152}
    # Too small to fit any rectangle in 100 attempts: unchanged.
    tiny = rand_img(shape=(1, 1, 3))
    random.seed(0)
    np.testing.assert_array_equal(
        ChannelRandomErasing(prob=1.)(dict(img=tiny))['img'], tiny)
    # Float images keep their dtype and the unrounded fill.
    random.seed(4)
    out = ChannelRandomErasing(prob=1.)(
        dict(img=img.astype(np.float32)))['img']
    assert out.dtype == np.float32
    assert np.isclose(out[..., 2], 152.3703, atol=1e-4).any()
    with pytest.raises(ValueError, match=r'H x W x 3 array, got \(4, 4, 2\)'):
        ChannelRandomErasing()(dict(img=np.zeros((4, 4, 2), np.uint8)))
    with pytest.raises(ValueError, match=r'prob must be in \[0, 1\]'):
        ChannelRandomErasing(prob=2)
    with pytest.raises(
            ValueError, match="channel_order must be 'bgr' or "
            "'rgb', got 'hsv'"):
        ChannelRandomErasing(channel_order='hsv')
    assert 'sl=0.02' in repr(ChannelRandomErasing())


# ---------------------------------------------------------------------------
# ChannelExchange
# ---------------------------------------------------------------------------


def test_exchange_copies_the_drawn_channel():
    img = rand_img(seed=3)
    bgr_of = {0: 2, 1: 1, 2: 0}  # reference RGB index -> BGR channel
    seen = set()
    for seed in range(10):
        random.seed(seed)
        idx = random.randint(0, 2)
        seen.add(idx)
        random.seed(seed)
        out = ChannelExchange()(dict(img=img.copy()))['img']
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], img[..., bgr_of[idx]])
        random.seed(seed)
        out = ChannelExchange(channel_order='rgb')(dict(img=img.copy()))['img']
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], img[..., idx])
    assert seen == {0, 1, 2}


def test_exchange_gray_case():
    img = rand_img(seed=4)
    b, g, r = (img[..., c].astype(np.float64) for c in range(3))
    expected = np.rint(0.2989 * r + 0.5870 * g + 0.1140 * b)
    seed = next(
        s for s in range(100) if random.seed(s) or random.randint(0, 3) == 3)
    random.seed(seed)
    out = ChannelExchange(gray=3)(dict(img=img))['img']
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=1)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1]
                                                   == out[..., 2]).all()


def test_exchange_normalised_mode_equals_reference():
    # Mid-range pixels so that no mapped value needs clipping.
    img = rand_img(30, 221, seed=5)
    for gray in (2, 3):
        for seed in range(8):
            random.seed(seed)
            ref = ref_exchange(normalise(img), gray)
            random.seed(seed)
            out = ChannelExchange(
                gray=gray, norm_mean=MEAN, norm_std=STD)(dict(img=img))['img']
            torch.testing.assert_close(
                normalise(out), ref, rtol=0, atol=0.5 / 255 / min(STD) + 1e-6)
    with pytest.raises(ValueError, match='give both norm_mean and norm_std'):
        ChannelExchange(norm_mean=MEAN)
    with pytest.raises(ValueError, match=r'H x W x 3 array, got \(4, 4\)'):
        ChannelExchange()(dict(img=np.zeros((4, 4), np.uint8)))
    assert 'gray=2' in repr(ChannelExchange())


# ---------------------------------------------------------------------------
# ChannelAdapGray
# ---------------------------------------------------------------------------


def adap_outcome(seed, prob):
    random.seed(seed)
    idx = random.randint(0, 3)
    if idx <= 2:
        return idx
    return 'gray' if random.uniform(0, 1) <= prob else 'keep'


def test_adap_gray_outcomes():
    img = rand_img(seed=6)
    b, g, r = (img[..., c].astype(np.float64) for c in range(3))
    gray = np.rint(0.2989 * r + 0.5870 * g + 0.1140 * b)
    bgr_of = {0: 2, 1: 1, 2: 0}
    seen = set()
    for seed in range(40):
        outcome = adap_outcome(seed, 0.5)
        seen.add(outcome)
        random.seed(seed)
        out = ChannelAdapGray(prob=0.5)(dict(img=img.copy()))['img']
        if outcome == 'keep':
            np.testing.assert_array_equal(out, img)
        elif outcome == 'gray':
            for c in range(3):
                np.testing.assert_allclose(out[..., c], gray, atol=1)
        else:
            for c in range(3):
                np.testing.assert_array_equal(out[..., c],
                                              img[..., bgr_of[outcome]])
    assert seen == {0, 1, 2, 'gray', 'keep'}


def test_adap_gray_normalised_mode_equals_reference():
    img = rand_img(30, 221, seed=7)
    for prob in (0.5, 0.9):
        for seed in range(16):
            random.seed(seed)
            ref = ref_adap_gray(normalise(img), prob)
            random.seed(seed)
            out = ChannelAdapGray(
                prob=prob, norm_mean=MEAN, norm_std=STD)(dict(img=img))['img']
            torch.testing.assert_close(
                normalise(out), ref, rtol=0, atol=0.5 / 255 / min(STD) + 1e-6)
    with pytest.raises(ValueError, match=r'prob must be in \[0, 1\], got -1'):
        ChannelAdapGray(prob=-1)


# ---------------------------------------------------------------------------
# ModalityDispatch
# ---------------------------------------------------------------------------


class Tag:
    """Appends its name to results['trace']."""

    def __init__(self, name):
        self.name = name

    def __call__(self, results):
        results.setdefault('trace', []).append(self.name)
        return results


def test_dispatch_picks_the_modality_pipeline():
    dispatch = ModalityDispatch(
        vis=[Tag('v1'), Tag('v2')], ir=Tag('i1'), nir=None)
    assert dispatch(dict(modality='vis'))['trace'] == ['v1', 'v2']
    assert dispatch(dict(modality='ir'))['trace'] == ['i1']
    assert 'trace' not in dispatch(dict(modality='nir'))
    with pytest.raises(
            KeyError,
            match=r"no pipeline for modality 'thermal' "
            r"\(sample a/b.jpg\); available: \['ir', 'nir', "
            r"'vis'\]"):
        dispatch(dict(modality='thermal', img_path='a/b.jpg'))
    with pytest.raises(KeyError, match=r'needs results\["modality"\]'):
        dispatch(dict(img_path='a.jpg'))
    with pytest.raises(ValueError, match='at least one modality'):
        ModalityDispatch()
    with pytest.raises(TypeError, match="the 'ir' pipeline must hold"):
        ModalityDispatch(ir=[3])


def test_dispatch_built_from_configs():
    dispatch = TRANSFORMS.build(
        dict(
            type='ModalityDispatch',
            vis=[dict(type='ChannelExchange')],
            ir=[dict(type='RandomFlip', prob=1., direction='horizontal')]))
    img = rand_img(seed=8)
    out = dispatch(dict(img=img.copy(), modality='ir'))['img']
    np.testing.assert_array_equal(out, img[:, ::-1])  # mmcv's RandomFlip
    out = dispatch(dict(img=img.copy(), modality='vis'))['img']
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0]
                                                   == out[..., 2]).all()
    assert 'ChannelExchange' in repr(dispatch) and 'ir=' in repr(dispatch)


# ---------------------------------------------------------------------------
# PackVIReIDInputs
# ---------------------------------------------------------------------------


def test_pack_inputs_and_metainfo():
    img = rand_img(shape=(6, 4, 3), seed=9)
    results = dict(
        img=img,
        gt_label=7,
        sample_idx=3,
        img_path='x/0001.jpg',
        modality='ir',
        cam_id=3,
        ori_shape=(6, 4),
        img_shape=(6, 4),
        text='a person in a dark coat',
        unrelated='dropped')
    packed = TRANSFORMS.build(dict(type='PackVIReIDInputs'))(results)
    assert set(packed) == {'inputs', 'data_samples'}
    inputs = packed['inputs']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 6, 4)
    assert inputs.is_contiguous()
    np.testing.assert_array_equal(inputs.permute(1, 2, 0).numpy(), img)
    sample = packed['data_samples']
    assert isinstance(sample, DataSample)
    assert sample.gt_label.tolist() == [7]
    assert sample.metainfo == dict(
        sample_idx=3,
        img_path='x/0001.jpg',
        modality='ir',
        cam_id=3,
        ori_shape=(6, 4),
        img_shape=(6, 4),
        text='a person in a dark coat')
    assert 'unrelated' not in sample


def test_pack_optional_keys_and_formats():
    packer = PackVIReIDInputs(algorithm_keys=('cam_id', ), meta_keys=('id', ))
    packed = packer(dict(img=np.zeros((5, 3), np.uint8), cam_id=2))
    assert packed['inputs'].shape == (1, 5, 3)  # grey image gets a channel
    sample = packed['data_samples']
    assert 'gt_label' not in sample and sample.metainfo == {}
    assert sample.cam_id == 2  # an algorithm key is a data field
    views = [rand_img(shape=(4, 2, 3)), rand_img(shape=(4, 2, 3), seed=1)]
    packed = PackVIReIDInputs()(dict(img=views, gt_label=0))
    assert [v.shape for v in packed['inputs']] == [(3, 4, 2), (3, 4, 2)]
    with pytest.raises(KeyError, match=r"no 'img' \(sample a.jpg\)"):
        PackVIReIDInputs()(dict(img_path='a.jpg'))
    with pytest.raises(TypeError, match='got str'):
        PackVIReIDInputs()(dict(img='a.jpg'))
    assert "input_key='img'" in repr(packer)
