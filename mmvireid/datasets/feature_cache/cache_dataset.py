# Copyright (c) mmvireid contributors. All rights reserved.
"""A dataset over pre-computed image features (prompt-learning stages),
its pair batch sampler and its modality filter."""
import math
from typing import Iterable, Iterator, List, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mmvireid.structures import check_modality, modality_id

__all__ = [
    'FeatureCacheDataset', 'PairedCacheBatchSampler', 'filter_modalities'
]


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


def filter_modalities(dataset: FeatureCacheDataset,
                      keep: Optional[Iterable[str]]) -> FeatureCacheDataset:
    """Keep the features of the modalities in ``keep`` (None: all)."""
    if keep is None:
        return dataset
    for name in keep:
        check_modality(name, 'each of feature_cache.modalities')
    keep_ids = torch.tensor([modality_id(m) for m in keep])
    mask = torch.isin(dataset.modalities, keep_ids)
    return FeatureCacheDataset(dataset.feats[mask], dataset.labels[mask],
                               dataset.modalities[mask])


class PairedCacheBatchSampler(Sampler):
    """Batches of feature *pairs* from a paired feature cache.

    The cache holds ``num_pairs`` visible features followed by their
    ``num_pairs`` infrared partners (item ``j`` and item ``num_pairs + j``
    share an identity). ``sampler`` draws pair indices (shuffled and sharded
    across ranks, e.g. :class:`mmengine.dataset.DefaultSampler` over
    ``range(num_pairs)``); every ``batch_size`` of them become one batch
    ``[j_1, ..., j_B, num_pairs + j_1, ..., num_pairs + j_B]``, i.e. ``B``
    visible features then their ``B`` infrared partners, as CSDN's stage 1
    forms its batches.

    Args:
        sampler (Sampler): Sampler of pair indices; it has ``set_epoch`` for
            per-epoch shuffling (``DistSamplerSeedHook`` calls it through
            ``batch_sampler.sampler``).
        num_pairs (int): Number of pairs in the cache.
        batch_size (int): Pairs per batch (a batch holds twice as many
            features).
        drop_last (bool): Drop the last incomplete batch (CSDN iterates
            ``num_pairs // batch_size`` batches).
    """

    def __init__(self,
                 sampler: Sampler,
                 num_pairs: int,
                 batch_size: int,
                 drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(
                f'PairedCacheBatchSampler: batch_size must be >= 1, got '
                f'{batch_size}')
        self.sampler = sampler
        self.num_pairs = int(num_pairs)
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[int] = []
        for idx in self.sampler:
            batch.append(int(idx))
            if len(batch) == self.batch_size:
                yield batch + [self.num_pairs + i for i in batch]
                batch = []
        if batch and not self.drop_last:
            yield batch + [self.num_pairs + i for i in batch]

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return math.ceil(len(self.sampler) / self.batch_size)
