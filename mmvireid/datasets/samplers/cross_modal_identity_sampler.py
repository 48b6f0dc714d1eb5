# Copyright (c) mmvireid contributors. All rights reserved.
"""P identities x K images per modality, visible and infrared aligned."""
from typing import Dict, Iterator, List, Optional, Sized, Tuple

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmvireid.registry import DATA_SAMPLERS
from mmvireid.structures import IR, MODALITIES, VIS

__all__ = ['CrossModalIdentitySampler']


def _read_labels_and_modalities(
        dataset: Sized) -> Tuple[np.ndarray, np.ndarray]:
    """Read every sample's train label and modality without loading images.

    Uses ``dataset.get_labels()`` / ``dataset.get_modalities()`` when the
    dataset has them and falls back to ``dataset.get_data_info(i)``'s
    ``'gt_label'`` and ``'modality'`` fields otherwise.
    """
    # Lazily initialised mmengine datasets have no data list yet.
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    name = type(dataset).__name__
    if hasattr(dataset, 'get_labels') and hasattr(dataset, 'get_modalities'):
        labels = np.asarray(dataset.get_labels())
        modalities = np.asarray(dataset.get_modalities())
    elif hasattr(dataset, 'get_data_info'):
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        try:
            labels = np.asarray([int(info['gt_label']) for info in infos])
            modalities = np.asarray([info['modality'] for info in infos])
        except KeyError as e:
            raise KeyError(
                f'CrossModalIdentitySampler: the data info of {name} has no '
                f'field {e.args[0]}; every sample needs gt_label and '
                'modality.') from e
    else:
        raise TypeError(
            f'CrossModalIdentitySampler needs a dataset with get_labels() and '
            f'get_modalities(), or get_data_info(idx); {name} has neither.')
    if labels.shape != (len(dataset), ) or \
            modalities.shape != (len(dataset), ):
        raise ValueError(
            f'CrossModalIdentitySampler: {name} has {len(dataset)} samples '
            f'but {labels.shape} labels and {modalities.shape} modalities.')
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError('CrossModalIdentitySampler: the train labels of '
                        f'{name} must be integers, got dtype {labels.dtype}.')
    return labels.astype(np.int64), modalities


@DATA_SAMPLERS.register_module()
class CrossModalIdentitySampler(Sampler):
    """Identity sampler of the AGW/CAJ/CSDN ``IdentitySampler``, as one stream
    of dataset indices.

    Each consecutive chunk of ``2 * num_ids * num_instances`` indices is one
    batch: ``P = num_ids`` identities x ``K = num_instances`` **visible**
    indices (K consecutive per identity), followed by the same P identities x
    K **infrared** indices in the same order. Position ``j`` of the visible
    half and position ``j`` of the infrared half therefore share an identity
    (CSDN's stage 1 and MSEL rely on it). Use it with
    ``batch_size = 2 * num_ids * num_instances``.

    Draws (``world_size`` 1) equal the reference's ``np.random`` calls with
    the global state seeded by ``seed + epoch``: with N = max(#visible,
    #infrared), for each of ``floor(N / (P * K)) + 1`` steps,
    ``choice(unique_labels, P, replace=False)``, then for each chosen label
    in order ``choice(vis_positions[label], K)`` and
    ``choice(ir_positions[label], K)`` (with replacement). Positions count
    within one modality in dataset order, and are mapped to dataset indices.

    Under DDP with ``w`` ranks, every step draws ``w * P`` distinct labels in
    one call and rank ``r`` takes labels ``[r * P, (r + 1) * P)``; the
    per-label draws of all ranks are made in the same order on every rank, so
    the ranks consume one RNG stream and their identities are disjoint within
    a step.
    Each rank runs ``floor(N / (P * K * w)) + 1`` steps.

    ``len(sampler)`` is the exact number of indices yielded,
    ``2 * P * K * steps``. The reference's ``__len__`` returns ``N``, so its
    ``len(loader)`` reports one batch fewer than it runs.

    Args:
        dataset (Sized): Training set. It provides ``get_labels()`` (int
            labels in ``0..C-1``) and ``get_modalities()`` (``'vis'`` /
            ``'ir'``), or ``get_data_info(idx)`` with ``'gt_label'`` and
            ``'modality'``. Every identity needs images in both modalities.
        num_ids (int): P, identities per batch. Defaults to 8.
        num_instances (int): K, images per identity and modality. Defaults
            to 4.
        shuffle (bool): If True, the draws depend on the epoch (call
            :meth:`set_epoch`); if False, every epoch repeats the draws of
            ``seed``, like :class:`mmengine.dataset.DefaultSampler` yields the
            same order. Defaults to True.
        seed (int, optional): Seed shared by all ranks; None draws one and
            syncs it across ranks. Defaults to None.
        round_up (bool): If True, run ``floor(N / (P * K * w)) + 1`` steps,
            the reference's count (one more batch than fit in ``N`` pairs,
            even when they fit exactly); if False,
            ``max(1, floor(N / (P * K * w)))``. Defaults to True.
        num_replicas (int, optional): World size; None reads it from
            :func:`mmengine.dist.get_dist_info`. Defaults to None.
        rank (int, optional): This process' rank; None reads it from
            :func:`mmengine.dist.get_dist_info`. Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 num_ids: int = 8,
                 num_instances: int = 4,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 num_replicas: Optional[int] = None,
                 rank: Optional[int] = None) -> None:
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if num_replicas is None else num_replicas
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f'CrossModalIdentitySampler: rank {self.rank} is out of range '
                f'for world size {self.world_size}.')
        for key, value in (('num_ids', num_ids), ('num_instances',
                                                  num_instances)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f'CrossModalIdentitySampler: {key} must be '
                                 f'a positive int, got {value!r}.')
        self.dataset = dataset
        self.num_ids = int(num_ids)
        self.num_instances = int(num_instances)
        self.shuffle = shuffle
        self.round_up = round_up
        if seed is None:
            seed = sync_random_seed()
        self.seed = seed
        self.epoch = 0

        labels, modalities = _read_labels_and_modalities(dataset)
        self.vis_pos, self.ir_pos, self.unique_labels = self._index(
            labels, modalities,
            type(dataset).__name__)
        self.num_pairs = max(
            sum(len(v) for v in self.vis_pos.values()),
            sum(len(v) for v in self.ir_pos.values()))

        ids_per_step = self.num_ids * self.world_size
        if ids_per_step > len(self.unique_labels):
            raise ValueError(
                f'CrossModalIdentitySampler: each step draws num_ids x '
                f'world_size = {self.num_ids} x {self.world_size} = '
                f'{ids_per_step} distinct identities, but the dataset has '
                f'only {len(self.unique_labels)}.')
        full_steps = self.num_pairs // (
            self.num_ids * self.num_instances * self.world_size)
        self.num_steps = full_steps + 1 if round_up else max(1, full_steps)

    @staticmethod
    def _index(
        labels: np.ndarray, modalities: np.ndarray, name: str
    ) -> Tuple[Dict[int, np.ndarray], Dict[int, np.ndarray], np.ndarray]:
        """Dataset indices of every label, per modality, and checks."""
        bad = sorted(set(modalities.tolist()) - set(MODALITIES))
        if bad:
            raise ValueError(
                f'CrossModalIdentitySampler: {name} has modalities {bad}; '
                f'only {list(MODALITIES)} are known.')
        vis_idx = np.flatnonzero(modalities == VIS)
        ir_idx = np.flatnonzero(modalities == IR)
        vis_labels, ir_labels = labels[vis_idx], labels[ir_idx]
        uni_vis, uni_ir = np.unique(vis_labels), np.unique(ir_labels)
        if uni_vis.size == 0 or uni_ir.size == 0:
            raise ValueError(
                f'CrossModalIdentitySampler: {name} needs both visible and '
                f'infrared samples, got {vis_idx.size} visible and '
                f'{ir_idx.size} infrared.')

        def preview(values) -> str:
            values = [int(v) for v in values]
            more = f' ... ({len(values)} in all)' if len(values) > 20 else ''
            return f'{values[:20]}{more}'

        only_vis = np.setdiff1d(uni_vis, uni_ir)
        only_ir = np.setdiff1d(uni_ir, uni_vis)
        if only_vis.size or only_ir.size:
            raise ValueError(
                'CrossModalIdentitySampler: every identity needs images in '
                f'both modalities; in {name}, labels {preview(only_vis)} have '
                f'no infrared image and labels {preview(only_ir)} have no '
                'visible image.')
        # The reference indexes its position lists by label *value*, so the
        # labels must be exactly 0..C-1.
        expected = np.arange(uni_vis.size)
        if not np.array_equal(uni_vis, expected):
            raise ValueError(
                'CrossModalIdentitySampler: train labels must be 0..C-1 '
                f'without gaps; {name} has {uni_vis.size} identities with '
                f'labels {preview(np.setdiff1d(uni_vis, expected))} outside '
                f'0..{uni_vis.size - 1}.')
        # A stable sort keeps dataset order within each label, which is the
        # order of the reference's position lists (``GenIdx``).
        vis_pos = _group(vis_idx, vis_labels)
        ir_pos = _group(ir_idx, ir_labels)
        return vis_pos, ir_pos, uni_vis

    def _draw(self, rng: np.random.RandomState) -> List[int]:
        """All steps of one epoch for this rank, as dataset indices."""
        p, k = self.num_ids, self.num_instances
        indices: List[int] = []
        for _ in range(self.num_steps):
            labels = rng.choice(
                self.unique_labels, p * self.world_size, replace=False)
            vis: List[np.ndarray] = []
            ir: List[np.ndarray] = []
            for r in range(self.world_size):
                for label in labels[r * p:(r + 1) * p]:
                    # Draw for every rank, in the same order on every rank,
                    # so that all ranks stay on one RNG stream.
                    v = rng.choice(self.vis_pos[label], k)
                    i = rng.choice(self.ir_pos[label], k)
                    if r == self.rank:
                        vis.append(v)
                        ir.append(i)
            indices.extend(np.concatenate(vis).tolist())
            indices.extend(np.concatenate(ir).tolist())
        return indices

    def __iter__(self) -> Iterator[int]:
        """Yield ``len(self)`` dataset indices, batch by batch."""
        seed = self.seed + self.epoch if self.shuffle else self.seed
        rng = np.random.RandomState(seed % (2**32))
        return iter(self._draw(rng))

    def __len__(self) -> int:
        """The exact number of indices this rank yields per epoch."""
        return 2 * self.num_ids * self.num_instances * self.num_steps

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; with ``shuffle=True`` it changes the draws.

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_ids={self.num_ids}, '
                f'num_instances={self.num_instances}, '
                f'num_identities={len(self.unique_labels)}, '
                f'num_pairs={self.num_pairs}, steps={self.num_steps}, '
                f'rank={self.rank}, world_size={self.world_size}, '
                f'shuffle={self.shuffle}, seed={self.seed})')


def _group(indices: np.ndarray, labels: np.ndarray) -> Dict[int, np.ndarray]:
    """Map every label to the ``indices`` that carry it, in input order."""
    order = np.argsort(labels, kind='stable')
    sorted_labels = labels[order]
    uni, starts = np.unique(sorted_labels, return_index=True)
    groups = np.split(indices[order], starts[1:])
    return {int(label): group for label, group in zip(uni, groups)}
