# Copyright (c) mmvireid contributors. All rights reserved.
"""Channel augmentations of CAJ (Ye et al., ICCV 2021), as used by CSDN.

The reference applies them to the *normalised* RGB tensor (after
``ToTensor`` and ``Normalize``). OpenMMLab pipelines instead carry the image as
an ``H x W x C`` array in pixel space (``uint8``, BGR after
``LoadImageFromFile``) and normalise later in the data preprocessor, so these
transforms work in pixel space and map their effect back from the normalised
space where that matters (the erasing value, and optionally the channel
copies). Randomness comes from Python's :mod:`random` with exactly the
reference's calls, so a seeded ``random`` gives the reference's draws.
"""
import math
import random
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmvireid.registry import TRANSFORMS

__all__ = ['ChannelRandomErasing', 'ChannelExchange', 'ChannelAdapGray']

# Grey-level weights of R, G, B (ITU-R BT.601), as in the reference.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _rgb_to_index(channel_order: str) -> Sequence[int]:
    """Array channel index of R, G and B for the given channel order."""
    if channel_order == 'bgr':
        return (2, 1, 0)
    if channel_order == 'rgb':
        return (0, 1, 2)
    raise ValueError(
        f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}.")


def _cast_like(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Cast float pixel values to ``like``'s dtype (round and clip uint8)."""
    if like.dtype == np.uint8:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return values.astype(like.dtype)


def _check_norm(name: str, norm_mean, norm_std) -> None:
    if (norm_mean is None) != (norm_std is None):
        raise ValueError(f'{name}: give both norm_mean and norm_std, or '
                         'neither.')
    for key, value in (('norm_mean', norm_mean), ('norm_std', norm_std)):
        if value is not None and len(value) != 3:
            raise ValueError(f'{name}: {key} needs one value per RGB channel, '
                             f'got {value!r}.')
    if norm_std is not None and any(s <= 0 for s in norm_std):
        raise ValueError(f'{name}: norm_std must be positive, got '
                         f'{norm_std!r}.')


def _check_color_img(name: str, img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, 'shape', type(img).__name__)
        raise ValueError(f'{name} expects results["img"] as an H x W x 3 '
                         f'array, got {shape}.')


class _ChannelMixBase(BaseTransform):
    """Channel copies and grey conversion shared by the CAJ transforms.

    Args:
        norm_mean (Sequence[float], optional): RGB mean, in [0, 1], of the
            normalisation that follows in the data preprocessor.
        norm_std (Sequence[float], optional): RGB std of that normalisation.
            If both are given, channels are mixed as the reference mixes the
            *normalised* values and the result is mapped back to pixels
            (clipped to [0, 255] for uint8); if None, the pixel values are
            mixed directly.
        channel_order (str): ``'bgr'`` (OpenMMLab's loading default) or
            ``'rgb'``.
    """

    def __init__(self,
                 norm_mean: Optional[Sequence[float]] = None,
                 norm_std: Optional[Sequence[float]] = None,
                 channel_order: str = 'bgr') -> None:
        _check_norm(type(self).__name__, norm_mean, norm_std)
        self.norm_mean = None if norm_mean is None else tuple(norm_mean)
        self.norm_std = None if norm_std is None else tuple(norm_std)
        self.channel_order = channel_order
        self._rgb_index = _rgb_to_index(channel_order)

    def _to_norm(self, img: np.ndarray, rgb: int) -> np.ndarray:
        """RGB channel ``rgb`` of ``img`` in the working (float) space."""
        values = img[..., self._rgb_index[rgb]].astype(np.float32)
        if self.norm_mean is None:
            return values
        return (values / 255. - self.norm_mean[rgb]) / self.norm_std[rgb]

    def _from_norm(self, values: np.ndarray, rgb: int) -> np.ndarray:
        """Map working-space values of RGB channel ``rgb`` back to pixels."""
        if self.norm_mean is None:
            return values
        return (values * self.norm_std[rgb] + self.norm_mean[rgb]) * 255.

    def _copy_channel(self, img: np.ndarray, src_rgb: int) -> np.ndarray:
        """Copy RGB channel ``src_rgb`` into the two other channels."""
        out = img.copy()
        src = self._to_norm(img, src_rgb)
        for rgb in range(3):
            if rgb != src_rgb:  # the source channel stays as it is
                out[..., self._rgb_index[rgb]] = _cast_like(
                    self._from_norm(src, rgb), img)
        return out

    def _to_gray(self, img: np.ndarray) -> np.ndarray:
        """Replace all channels with the weighted RGB grey level."""
        gray = sum(w * self._to_norm(img, rgb)
                   for rgb, w in enumerate(GRAY_WEIGHTS))
        out = img.copy()
        for rgb in range(3):
            out[..., self._rgb_index[rgb]] = _cast_like(
                self._from_norm(gray, rgb), img)
        return out

    def _repr_norm(self) -> str:
        return (f'norm_mean={self.norm_mean}, norm_std={self.norm_std}, '
                f"channel_order='{self.channel_order}'")


@TRANSFORMS.register_module()
class ChannelExchange(_ChannelMixBase):
    """Random channel exchange (CAJ ``ChannelExchange``).

    Draws ``idx = random.randint(0, gray)``; ``idx`` 0, 1, 2 copies the R, G
    or B channel into all three channels, and any larger ``idx`` (only
    possible with ``gray >= 3``) replaces them with the grey level
    ``0.2989 R + 0.5870 G + 0.1140 B``. With the default ``gray=2`` the
    output is always a single channel repeated (CSDN's second visible view).

    Indices refer to the reference's RGB tensor; in a BGR array, R is channel
    2 and B channel 0, so ``idx`` is mapped accordingly.

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        gray (int): Largest index drawn. Defaults to 2.
        norm_mean, norm_std, channel_order: see below; by default the pixel
            values are copied (an exact grey image in pixel space). Give the
            preprocessor's normalisation (RGB, in [0, 1]) to copy the
            *normalised* values as the reference does, which after
            normalisation equals the reference up to uint8 rounding and
            clipping.

            - norm_mean (Sequence[float], optional): Defaults to None.
            - norm_std (Sequence[float], optional): Defaults to None.
            - channel_order (str): ``'bgr'`` or ``'rgb'``. Defaults to
              ``'bgr'``.
    """

    def __init__(self,
                 gray: int = 2,
                 norm_mean: Optional[Sequence[float]] = None,
                 norm_std: Optional[Sequence[float]] = None,
                 channel_order: str = 'bgr') -> None:
        super().__init__(norm_mean, norm_std, channel_order)
        if gray < 0:
            raise ValueError(
                f'ChannelExchange: gray must be >= 0, got {gray}.')
        self.gray = gray

    def transform(self, results: dict) -> dict:
        """Exchange the channels of ``results['img']``."""
        img = results['img']
        _check_color_img('ChannelExchange', img)
        idx = random.randint(0, self.gray)
        if idx <= 2:
            results['img'] = self._copy_channel(img, idx)
        else:
            results['img'] = self._to_gray(img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(gray={self.gray}, '
                f'{self._repr_norm()})')


@TRANSFORMS.register_module()
class ChannelAdapGray(_ChannelMixBase):
    """Random channel copy or greyscale (CAJ ``ChannelAdapGray``).

    Draws ``idx = random.randint(0, 3)``; 0, 1, 2 copy the R, G or B channel
    into all three channels; for 3, a second draw ``random.uniform(0, 1)``
    converts to grey (``0.2989 R + 0.5870 G + 0.1140 B``) if it is
    ``<= prob`` and keeps the image otherwise. So ``prob`` only acts in the
    fourth case: the image is always changed with probability 3/4, plus
    ``prob / 4``. CSDN applies it to the infrared view.

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        prob (float): Probability of the grey conversion in the fourth case.
            Defaults to 0.5.
        norm_mean (Sequence[float], optional): See :class:`ChannelExchange`.
        norm_std (Sequence[float], optional): See :class:`ChannelExchange`.
        channel_order (str): ``'bgr'`` or ``'rgb'``. Defaults to ``'bgr'``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 norm_mean: Optional[Sequence[float]] = None,
                 norm_std: Optional[Sequence[float]] = None,
                 channel_order: str = 'bgr') -> None:
        super().__init__(norm_mean, norm_std, channel_order)
        if not 0 <= prob <= 1:
            raise ValueError(
                f'ChannelAdapGray: prob must be in [0, 1], got {prob}.')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        """Copy a channel of, or grey, ``results['img']``."""
        img = results['img']
        _check_color_img('ChannelAdapGray', img)
        idx = random.randint(0, 3)
        if idx <= 2:
            results['img'] = self._copy_channel(img, idx)
        elif random.uniform(0, 1) <= self.prob:
            results['img'] = self._to_gray(img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'{self._repr_norm()})')


@TRANSFORMS.register_module()
class ChannelRandomErasing(BaseTransform):
    """Random erasing with a per-channel fill (CAJ ``ChannelRandomErasing``).

    With probability ``prob`` (the reference skips when
    ``random.uniform(0, 1) > prob``), up to 100 attempts draw a target area
    ``uniform(sl, sh) * H * W`` and an aspect ratio ``uniform(r1, 1 / r1)``,
    giving ``h = round(sqrt(area * ratio))`` and
    ``w = round(sqrt(area / ratio))``. The first attempt with ``h < H`` and
    ``w < W`` erases rows ``[y, y + h)`` and columns ``[x, x + w)`` with
    ``y = randint(0, H - h)`` and ``x = randint(0, W - w)``.

    The reference writes ``mean[c]`` into the *normalised* tensor. Here the
    image is still in pixel space, so channel ``c`` (RGB) is filled with the
    pixel value that normalises to it,
    ``(mean[c] * norm_std[c] + norm_mean[c]) * 255`` (rounded and clipped for
    uint8): after the data preprocessor's normalisation the erased area
    equals the reference's up to uint8 rounding. With the defaults the fill
    is RGB (152, 144, 129). To fill with a plain colour ``mean`` (fractions
    of 255), pass ``norm_mean=(0, 0, 0)`` and ``norm_std=(1, 1, 1)``.

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        prob (float): Probability of erasing. Defaults to 0.5.
        sl (float): Minimum erased fraction of the area. Defaults to 0.02.
        sh (float): Maximum erased fraction of the area. Defaults to 0.4.
        r1 (float): Minimum aspect ratio (the maximum is ``1 / r1``).
            Defaults to 0.3.
        mean (Sequence[float]): Reference fill value per RGB channel, in the
            normalised space. Defaults to (0.4914, 0.4822, 0.4465).
        norm_mean (Sequence[float]): RGB mean of the later normalisation, in
            [0, 1]. Defaults to the ImageNet mean (0.485, 0.456, 0.406).
        norm_std (Sequence[float]): RGB std of the later normalisation.
            Defaults to the ImageNet std (0.229, 0.224, 0.225).
        channel_order (str): ``'bgr'`` or ``'rgb'``. Defaults to ``'bgr'``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 sl: float = 0.02,
                 sh: float = 0.4,
                 r1: float = 0.3,
                 mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
                 norm_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 norm_std: Sequence[float] = (0.229, 0.224, 0.225),
                 channel_order: str = 'bgr') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(
                f'ChannelRandomErasing: prob must be in [0, 1], got {prob}.')
        if not 0 < sl <= sh:
            raise ValueError('ChannelRandomErasing: need 0 < sl <= sh, got '
                             f'sl={sl}, sh={sh}.')
        if not 0 < r1 <= 1:
            raise ValueError(
                f'ChannelRandomErasing: r1 must be in (0, 1], got {r1}.')
        if len(mean) != 3:
            raise ValueError('ChannelRandomErasing: mean needs one value per '
                             f'RGB channel, got {mean!r}.')
        _check_norm('ChannelRandomErasing', norm_mean, norm_std)
        self.prob = prob
        self.sl = sl
        self.sh = sh
        self.r1 = r1
        self.mean = tuple(mean)
        self.norm_mean = tuple(norm_mean)
        self.norm_std = tuple(norm_std)
        self.channel_order = channel_order
        self._rgb_index = _rgb_to_index(channel_order)
        # Pixel value (0..255 scale, float) that normalises to ``mean[c]``.
        self.fill_rgb = tuple(
            (m * s + nm) * 255.
            for m, s, nm in zip(self.mean, self.norm_std, self.norm_mean))

    def transform(self, results: dict) -> dict:
        """Erase a rectangle of ``results['img']`` (in place on a copy)."""
        img = results['img']
        if not isinstance(img, np.ndarray) or not (
                img.ndim == 2 or img.ndim == 3 and img.shape[2] in (1, 3)):
            shape = getattr(img, 'shape', type(img).__name__)
            raise ValueError('ChannelRandomErasing expects results["img"] as '
                             'an H x W, H x W x 1 or H x W x 3 array, got '
                             f'{shape}.')
        if random.uniform(0, 1) > self.prob:
            return results

        height, width = img.shape[:2]
        area = height * width
        for _ in range(100):
            target_area = random.uniform(self.sl, self.sh) * area
            aspect_ratio = random.uniform(self.r1, 1 / self.r1)
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < width and h < height:
                top = random.randint(0, height - h)
                left = random.randint(0, width - w)
                img = img.copy()
                region = img[top:top + h, left:left + w]
                if img.ndim == 3 and img.shape[2] == 3:
                    for rgb in range(3):
                        region[..., self._rgb_index[rgb]] = _cast_like(
                            np.float64(self.fill_rgb[rgb]), img)
                else:
                    # One channel: the reference writes mean[0] only.
                    region[...] = _cast_like(np.float64(self.fill_rgb[0]), img)
                results['img'] = img
                return results
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, sl={self.sl}, '
                f'sh={self.sh}, r1={self.r1}, mean={self.mean}, '
                f'norm_mean={self.norm_mean}, norm_std={self.norm_std}, '
                f"channel_order='{self.channel_order}')")
