# Copyright (c) mmvireid contributors. All rights reserved.
from typing import List, Optional, Sequence

import torch
from mmengine.model import ImgDataPreprocessor

from mmvireid.registry import MODELS

__all__ = ['VIReIDDataPreprocessor', 'modality_tensor', 'cam_tensor']

_MODALITY_IDS = {'vis': 0, 'ir': 1}


def modality_tensor(data_samples: Sequence, device=None) -> torch.Tensor:
    """``[B]`` long tensor of modality ids (0 visible, 1 infrared)."""
    try:
        ids = [_MODALITY_IDS[s.modality] for s in data_samples]
    except KeyError as e:
        raise KeyError(f'unknown modality {e}; expected one of '
                       f'{sorted(_MODALITY_IDS)}') from None
    except AttributeError:
        raise AttributeError(
            'data samples carry no "modality": keep "modality" in '
            'PackVIReIDInputs meta_keys') from None
    return torch.tensor(ids, dtype=torch.long, device=device)


def cam_tensor(data_samples: Sequence, device=None) -> Optional[torch.Tensor]:
    """``[B]`` long tensor of camera ids, or None if samples carry none."""
    if not data_samples or 'cam_id' not in data_samples[0]:
        return None
    return torch.tensor([int(s.cam_id) for s in data_samples],
                        dtype=torch.long,
                        device=device)


@MODELS.register_module()
class VIReIDDataPreprocessor(ImgDataPreprocessor):
    """Stack, convert BGR->RGB and normalise images; pass cached features.

    Image batches (``inputs`` a list of ``[3, H, W]`` uint8 tensors) are
    handled as by :class:`mmengine.model.ImgDataPreprocessor`. A batch from a
    feature cache (``inputs`` a ``[B, D]`` float tensor, ``data_samples`` a
    dict of tensors) is only moved to the device: prompt stages train on
    features, not images.

    Args:
        mean, std (sequence of float): In 0-255 pixel units, RGB order.
            Defaults to CLIP's.
        to_rgb (bool): Convert the loaded BGR images to RGB. Defaults to True.
    """

    def __init__(self,
                 mean: Sequence[float] = (122.7709383, 116.7460125,
                                          104.09373615),
                 std: Sequence[float] = (68.5005327, 66.6321579, 70.32316305),
                 to_rgb: bool = True,
                 pad_size_divisor: int = 1,
                 non_blocking: bool = False) -> None:
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            bgr_to_rgb=to_rgb,
            non_blocking=non_blocking)

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data.get('inputs') if isinstance(data, dict) else None
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 2:
            return self.cast_data(data)  # cached features
        return super().forward(data, training)
