# Copyright (c) mmvireid contributors. All rights reserved.
"""Packing of a VI-ReID sample into model inputs and a data sample."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from mmvireid.registry import TRANSFORMS

__all__ = ['PackVIReIDInputs']


def _format_image(img):
    """``H x W (x C)`` array -> ``C x H x W`` tensor (dtype kept).

    Lists (e.g. the views of a multi-view transform) are formatted item by
    item; tensors pass through unchanged.
    """
    if isinstance(img, list):
        return [_format_image(item) for item in img]
    if isinstance(img, torch.Tensor):
        return img
    if isinstance(img, np.ndarray):
        if img.ndim == 2:  # a single-channel image
            img = img[..., None]
        if img.ndim != 3:
            raise ValueError('PackVIReIDInputs expects an H x W (x C) image, '
                             f'got an array of shape {img.shape}.')
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    raise TypeError('PackVIReIDInputs expects the image as a numpy array, a '
                    f'tensor or a list of them, got {type(img).__name__}.')


@TRANSFORMS.register_module()
class PackVIReIDInputs(BaseTransform):
    """Pack a sample as ``dict(inputs=..., data_samples=...)``.

    Like mmpretrain's ``PackInputs``: ``inputs`` is the image as a
    ``C x H x W`` tensor with its dtype kept (uint8 from the loader; the data
    preprocessor converts and normalises), and ``data_samples`` a
    :class:`mmpretrain.structures.DataSample` with ``gt_label`` set (train:
    the relabelled id, test: the person id) and the meta keys present in the
    sample stored as metainfo (``data_sample.modality``, ``.cam_id``, ...).

    **Required Keys:** ``input_key``. **Optional Keys:** ``gt_label``,
    ``*algorithm_keys``, ``*meta_keys``.

    Args:
        input_key (str): Key of the image. Defaults to ``'img'``.
        algorithm_keys (Sequence[str]): Keys stored as data fields of the
            data sample. Defaults to ().
        meta_keys (Sequence[str]): Keys stored as metainfo when present.
            Defaults to :attr:`DEFAULT_META_KEYS`.
    """

    DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'modality', 'cam_id',
                         'ori_shape', 'img_shape', 'text')

    def __init__(self,
                 input_key: str = 'img',
                 algorithm_keys: Sequence[str] = (),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.input_key = input_key
        self.algorithm_keys = tuple(algorithm_keys)
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        if self.input_key not in results:
            raise KeyError(
                f'PackVIReIDInputs: the sample has no {self.input_key!r} '
                f'(sample {results.get("img_path", "?")}); keys: '
                f'{sorted(results)}.')
        packed = dict(inputs=_format_image(results[self.input_key]))
        data_sample = DataSample()
        if 'gt_label' in results:
            data_sample.set_gt_label(results['gt_label'])
        for key in self.algorithm_keys:
            if key in results:
                data_sample.set_field(results[key], key)
        for key in self.meta_keys:
            if key in results:
                data_sample.set_field(results[key], key, field_type='metainfo')
        packed['data_samples'] = data_sample
        return packed

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(input_key='{self.input_key}', "
                f'algorithm_keys={self.algorithm_keys}, '
                f'meta_keys={self.meta_keys})')
