# Copyright (c) mmvireid contributors. All rights reserved.
"""A dataset over pre-computed image features (prompt-learning stages)."""
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ['FeatureCacheDataset', 'MODALITY_IDS']

#: modality string -> integer id used in tensors (0 visible, 1 infrared)
MODALITY_IDS = {'vis': 0, 'ir': 1}


class FeatureCacheDataset(Dataset):
    """Cached image features with their labels and modalities.

    Prompt stages train only text tokens against frozen image features, so
    the references (CLIP-ReID, CSDN) compute the features once and iterate
    over them; this dataset is that cache. An item is
    ``dict(inputs=feat [D], data_samples=dict(gt_label=int64, modality=int64))``
    so ``default_collate`` gives ``inputs [B, D]`` and label/modality ``[B]``.

    Args:
        feats (Tensor): ``[N, D]`` features.
        labels (Tensor): ``[N]`` train labels (0..C-1).
        modalities (Tensor): ``[N]`` modality ids (0 visible, 1 infrared).
    """

    # BaseDataset-like attribute so mmengine's loop can log dataset meta.
    metainfo: dict = {}

    def __init__(self, feats: torch.Tensor, labels: torch.Tensor,
                 modalities: torch.Tensor) -> None:
        if not (len(feats) == len(labels) == len(modalities)):
            raise ValueError(
                f'FeatureCacheDataset: feats ({len(feats)}), labels '
                f'({len(labels)}) and modalities ({len(modalities)}) must '
                'have the same length')
        self.feats = feats
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.modalities = torch.as_tensor(modalities, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, idx: int) -> dict:
        return dict(
            inputs=self.feats[idx],
            data_samples=dict(
                gt_label=self.labels[idx], modality=self.modalities[idx]))

    def get_labels(self) -> np.ndarray:
        return self.labels.numpy()
