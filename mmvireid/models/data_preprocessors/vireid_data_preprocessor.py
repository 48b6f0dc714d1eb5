# Copyright (c) mmvireid contributors. All rights reserved.
from typing import Optional, Sequence

import torch
from mmengine.model import ImgDataPreprocessor

from mmvireid.registry import MODELS
from mmvireid.structures import MODALITY_IDS
from ..utils.device import to_device

__all__ = ['VIReIDDataPreprocessor', 'modality_tensor', 'cam_tensor']


def modality_tensor(data_samples: Sequence, device=None) -> torch.Tensor:
    """``[B]`` long tensor of modality ids (:data:`~mmvireid.structures.
    MODALITY_IDS`: ``VIS_ID`` visible, ``IR_ID`` infrared).

    Built on the host from the samples' ``modality`` metainfo (where unknown
    names are refused at no device cost); with ``device`` it is then copied
    there without blocking (:func:`~mmvireid.models.utils.to_device`).
    """
    try:
        ids = [MODALITY_IDS[s.modality] for s in data_samples]
    except KeyError as e:
        raise KeyError(f'unknown modality {e}; expected one of '
                       f'{sorted(MODALITY_IDS)}') from None
    except AttributeError:
        raise AttributeError(
            'data samples carry no "modality": keep "modality" in '
            'PackVIReIDInputs meta_keys') from None
    ids = torch.tensor(ids, dtype=torch.long)
    return ids if device is None else to_device(ids, device)


def cam_tensor(data_samples: Sequence, device=None) -> Optional[torch.Tensor]:
    """``[B]`` long tensor of camera ids, or None if samples carry none.

    Built on the host; with ``device`` copied there without blocking.
    """
    if not data_samples or 'cam_id' not in data_samples[0]:
        return None
    cams = torch.tensor([int(s.cam_id) for s in data_samples],
                        dtype=torch.long)
    return cams if device is None else to_device(cams, device)


@MODELS.register_module()
class VIReIDDataPreprocessor(ImgDataPreprocessor):
    """Stack, convert BGR->RGB and normalise images; pass cached features.

    Image batches (``inputs`` a list of ``[3, H, W]`` uint8 tensors) are
    handled as by :class:`mmengine.model.ImgDataPreprocessor`. A batch from a
    feature cache (``inputs`` a ``[B, D]`` float tensor, ``data_samples`` a
    dict of tensors) is only moved to the device: prompt stages train on
    features, not images.

    **Only the inputs move to the device; ``data_samples`` are returned
    as given, on the host.** Their labels, modality and camera ids are
    batch metadata: the models validate them and build index structures
    from them on the host, and copy to the device only the (batched) tensors
    the device needs, without blocking (see
    :mod:`mmvireid.models.utils.device`). mmengine's preprocessor would
    instead copy every sample's label separately with a blocking copy, each
    one a device sync.

    Args:
        mean, std (sequence of float): In 0-255 pixel units, RGB order.
            Defaults to CLIP's.
        to_rgb (bool): Convert the loaded BGR images to RGB. Defaults to True.
        pad_size_divisor (int): See :class:`ImgDataPreprocessor`.
            Defaults to 1.
        non_blocking (bool): Copy host inputs to a CUDA device through pinned
            memory with ``non_blocking=True`` (the host does not wait for
            the GPU); False uses mmengine's blocking copies. Defaults to
            True.
    """

    def __init__(self,
                 mean: Sequence[float] = (122.7709383, 116.7460125,
                                          104.09373615),
                 std: Sequence[float] = (68.5005327, 66.6321579, 70.32316305),
                 to_rgb: bool = True,
                 pad_size_divisor: int = 1,
                 non_blocking: bool = True) -> None:
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            bgr_to_rgb=to_rgb,
            non_blocking=non_blocking)

    def cast_data(self, data):
        """Move tensors in ``data`` to the device, without blocking when
        ``non_blocking`` is set (mmengine's version copies pageable memory
        with ``non_blocking``, which may still wait for the GPU)."""
        if isinstance(data, torch.Tensor) and self._non_blocking:
            return to_device(data, self.device)
        return super().cast_data(data)

    def _images_to_batch(self, inputs) -> Optional[torch.Tensor]:
        """``[B, 3, H, W]`` RGB-normalised float batch on the device, or None
        where mmengine's general path is needed (padding, not 3 channels).

        The same values as :meth:`ImgDataPreprocessor.forward` (channel
        swap, ``float()``, ``(x - mean) / std``, stack), with the channel
        swap done by ``flip``: mmengine indexes ``x[[2, 1, 0]]``, which
        builds the index on the device from a Python list, a blocking copy
        per image.
        """
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                return None
            shapes = {tuple(inputs.shape[1:])}
        elif inputs and all(
                isinstance(x, torch.Tensor) and x.dim() == 3 for x in inputs):
            shapes = {tuple(x.shape) for x in inputs}
        else:
            return None
        if len(shapes) != 1:
            return None
        channels, height, width = shapes.pop()
        divisor = self.pad_size_divisor
        if channels != 3 or height % divisor or width % divisor:
            return None
        if isinstance(inputs, torch.Tensor):
            batch = self.cast_data(inputs)
        else:
            batch = torch.stack([self.cast_data(x) for x in inputs])
        if self._channel_conversion:
            batch = batch.flip(1)  # BGR -> RGB
        batch = batch.float()
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        return batch

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict):
            return super().forward(data, training)
        data = dict(data)
        # Host metadata: not moved (see the class docstring).
        data_samples = data.pop('data_samples', None)
        inputs = data.get('inputs')
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 2:
            data = self.cast_data(data)  # cached features
        else:
            batch = self._images_to_batch(inputs)
            if batch is None:
                data = super().forward(data, training)
            else:
                data = self.cast_data(
                    {k: v
                     for k, v in data.items() if k != 'inputs'})
                data['inputs'] = batch
        data['data_samples'] = data_samples
        return data
