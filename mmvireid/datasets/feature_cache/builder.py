# Copyright (c) mmvireid contributors. All rights reserved.
"""Build the feature cache of a prompt stage: extract, gather, batch.

:func:`build_feature_cache` is the one entry point; the stage hook
(:class:`~mmvireid.engine.hooks.StageSwitchHook`) calls it at a stage start
and ``tools/analysis_tools/benchmark_train.py`` calls it on synthetic
images. It lives with the cache dataset because everything it does is data
handling: read the train set with the extraction pipeline, in dataset order
or in one draw of the identity sampler, gather the ranks' shares and batch
the result. The model is used only through ``extract_cache_features``, and
the mixed precision of the extraction comes in as an ``autocast`` argument,
so this module needs neither the engine nor the models.
"""
import copy
from contextlib import contextmanager, nullcontext
from typing import (Callable, ContextManager, Dict, Iterator, List, Optional,
                    Tuple, Union)

import torch
from mmengine.dataset import DefaultSampler, default_collate, pseudo_collate
from mmengine.dist import all_gather_object, get_rank
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Dataset, Sampler

from mmvireid.registry import DATASETS
from mmvireid.structures import IR_ID, VIS_ID, check_modality, modality_id
from .cache_dataset import (FeatureCacheDataset, PairedCacheBatchSampler,
                            filter_modalities)

__all__ = [
    'CACHE_MODES', 'CACHE_KEYS', 'check_cache_cfg', 'cache_dataset_cfg',
    'extract_batch_features', 'build_feature_cache'
]

#: How a feature cache is extracted and batched (see the package docstring).
CACHE_MODES = ('shuffled', 'paired', 'sampled')
#: The keys a ``feature_cache`` dict may hold.
CACHE_KEYS = ('mode', 'pipeline', 'batch_size', 'extract_batch_size',
              'num_workers', 'modalities', 'drop_last')
#: Keys that do not apply to a mode: the identity-sampler modes extract one
#: sampler step per batch, and ``'paired'`` keeps both modalities.
_REFUSED_KEYS = {
    'paired': ('extract_batch_size', 'modalities'),
    'sampled': ('extract_batch_size', ),
    'shuffled': ()
}

#: A callable returning the autocast context of the extraction.
AutocastFactory = Callable[[], ContextManager]


def check_cache_cfg(stage: str, cache_cfg: Dict) -> str:
    """Validate a stage's ``feature_cache`` settings; return its mode.

    Args:
        stage (str): The stage name, for the messages.
        cache_cfg (dict): The ``feature_cache`` dict of the stage.

    Raises:
        KeyError: An unknown key.
        ValueError: An unknown mode or modality, a key that does not apply
            to the mode, or a batch size that is not a positive int.
    """
    unknown = set(cache_cfg) - set(CACHE_KEYS)
    if unknown:
        raise KeyError(f'stage "{stage}": unknown feature_cache keys '
                       f'{sorted(unknown)}; known keys are '
                       f'{list(CACHE_KEYS)}')
    mode = cache_cfg.get('mode', 'shuffled')
    if mode not in CACHE_MODES:
        raise ValueError(f'stage "{stage}": feature_cache.mode must be '
                         f'one of {CACHE_MODES}, got {mode!r}')
    for key in _REFUSED_KEYS[mode]:
        if key in cache_cfg:
            raise ValueError(
                f'stage "{stage}": feature_cache.{key} does not apply to '
                f'mode={mode!r} (it extracts one identity-sampler step '
                'per batch and keeps visible/infrared pairs); remove it')
    batch_size = cache_cfg.get('batch_size', 64)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f'stage "{stage}": feature_cache.batch_size must '
                         f'be a positive int, got {batch_size!r}')
    for name in cache_cfg.get('modalities') or ():
        check_modality(name, f'stage "{stage}": each of '
                       'feature_cache.modalities')
    return mode


def cache_dataset_cfg(cfg, cache_cfg: Dict) -> dict:
    """The train dataset config read with the extraction pipeline.

    Args:
        cfg (Config): The training config.
        cache_cfg (dict): The stage's ``feature_cache`` settings; their
            ``pipeline``, else the pipeline of ``val_dataloader.dataset``
            (else ``test_dataloader.dataset``) is used.

    Returns:
        dict: A copy of ``train_dataloader.dataset`` with that pipeline.
    """
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    if 'pipeline' not in dataset_cfg:
        raise KeyError('feature_cache: train_dataloader.dataset must be a '
                       'dataset config with a "pipeline" key')
    pipeline = cache_cfg.get('pipeline')
    if pipeline is None:
        for key in ('val_dataloader', 'test_dataloader'):
            loader_cfg = cfg.get(key) or {}
            pipeline = loader_cfg.get('dataset', {}).get('pipeline')
            if pipeline is not None:
                break
    if pipeline is None:
        raise KeyError(
            'feature_cache needs "pipeline" (the test-style pipeline used '
            'to extract cached features): give it, or define '
            'val_dataloader.dataset.pipeline to use that one')
    dataset_cfg['pipeline'] = copy.deepcopy(pipeline)
    return dataset_cfg


# ------------------------------------------------------------- extraction
@contextmanager
def _frozen_extraction(model, autocast: Optional[AutocastFactory]):
    """Eval mode (restored afterwards), no gradients, and the autocast of
    ``autocast()`` (none if it is None)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (autocast or nullcontext)():
            yield
    finally:
        model.train(was_training)


def extract_batch_features(model,
                           batch: dict,
                           autocast: Optional[AutocastFactory] = None
                           ) -> torch.Tensor:
    """The cache features of one image batch, as a cache holds them.

    Args:
        model: Has ``extract_cache_features(batch) -> [B, D]``.
        batch (dict): ``pseudo_collate``-d samples (``inputs``,
            ``data_samples``).
        autocast (callable, optional): Returns the autocast context of the
            extraction (the precision the stage trains in); None: fp32.

    Returns:
        Tensor: ``[B, D]`` fp32 features on the host, computed in eval
        mode without gradients.
    """
    with _frozen_extraction(model, autocast):
        return model.extract_cache_features(batch).float().cpu()


def _extract(model, loader, num_images: int,
             autocast: Optional[AutocastFactory],
             progress: bool) -> Iterator[Tuple[dict, torch.Tensor]]:
    """Yield ``(batch, [B, D] features)`` over ``loader``, with a log line
    and a progress bar on rank 0 when ``progress``."""
    bar = None
    if progress:
        print_log(
            f'Caching image features of {num_images} train images',
            logger='current')
        bar = ProgressBar(num_images) if get_rank() == 0 else None
    try:
        with _frozen_extraction(model, autocast):
            for batch in loader:
                feats = model.extract_cache_features(batch).float().cpu()
                yield batch, feats
                if bar is not None:
                    for _ in range(len(feats)):
                        bar.update()
    finally:
        if bar is not None:
            print()


def _dataset(dataset: Union[dict, Dataset]) -> Dataset:
    if not isinstance(dataset, dict):
        return dataset
    dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def _extract_every_image(model, cache_cfg: Dict, dataset, seed, autocast,
                         progress) -> FeatureCacheDataset:
    """``'shuffled'`` mode: every image of ``dataset`` once.

    Each rank extracts its shard; the parts are all-gathered and ordered
    by dataset index, so every rank holds the same complete cache with no
    sample missing or repeated.
    """
    loader = Runner.build_dataloader(
        dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=cache_cfg.get('extract_batch_size', 64),
            num_workers=cache_cfg.get('num_workers', 0),
            persistent_workers=False),
        seed=seed)
    parts: List[tuple] = []
    for batch, feats in _extract(model, loader, len(loader.dataset), autocast,
                                 progress):
        for feat, sample in zip(feats, batch['data_samples']):
            parts.append((sample.sample_idx, feat, int(sample.gt_label[0]),
                          modality_id(sample.modality)))
    gathered = {}
    for rank_part in all_gather_object(parts):
        for idx, feat, label, mod in rank_part:
            gathered[idx] = (feat, label, mod)  # padding repeats dedupe
    if len(gathered) != len(loader.dataset):
        raise RuntimeError(
            f'feature cache has {len(gathered)} entries for a dataset of '
            f'{len(loader.dataset)} images')
    order = sorted(gathered)
    return FeatureCacheDataset(
        torch.stack([gathered[i][0] for i in order]),
        torch.tensor([gathered[i][1] for i in order]),
        torch.tensor([gathered[i][2] for i in order]))


def _extract_sampler_draw(model, cache_cfg: Dict, dataset,
                          sampler: Optional[Sampler], epoch: int, autocast,
                          progress
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``'paired'`` / ``'sampled'`` modes: the images of one epoch's draw
    of the identity sampler, as visible/infrared pairs.

    ``sampler`` (a :class:`CrossModalIdentitySampler`: each step is
    ``P x K`` visible then the same ``P x K`` infrared indices) is set to
    ``epoch`` and iterated once; the dataset is read in that order, one
    sampler step per extraction batch. Under DDP every rank extracts its
    own share of the draw and the pairs are all-gathered in the order of a
    single process with the same global batch, so every rank holds the same
    cache.

    Returns:
        tuple[Tensor, Tensor, Tensor]: visible features ``[M, D]``, their
        infrared partners ``[M, D]`` and the ``M`` shared labels.
    """
    if not (hasattr(sampler, 'num_ids') and hasattr(sampler, 'num_instances')):
        raise TypeError(
            f'feature_cache mode {cache_cfg.get("mode")!r} extracts the '
            'draw of the image loader\'s CrossModalIdentitySampler, but '
            f'train_dataloader.sampler is a {type(sampler).__name__}')
    step = 2 * sampler.num_ids * sampler.num_instances
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)
    indices = [int(i) for i in sampler]
    if not indices or len(indices) % step:
        raise RuntimeError(
            f'{type(sampler).__name__} yielded {len(indices)} indices, '
            f'not a whole number of steps of {step} (2 x num_ids x '
            'num_instances)')
    loader = DataLoader(
        _dataset(dataset),
        batch_size=step,
        sampler=indices,
        num_workers=cache_cfg.get('num_workers', 0),
        collate_fn=pseudo_collate)
    half = step // 2
    vis, ir, labels = [], [], []
    for batch, feats in _extract(model, loader, len(indices), autocast,
                                 progress):
        samples = batch['data_samples']
        batch_labels = torch.tensor([int(s.gt_label[0]) for s in samples])
        mods = torch.tensor([modality_id(s.modality) for s in samples])
        aligned = len(samples) == step and not bool(
            (mods[:half] != VIS_ID).any() or (mods[half:] != IR_ID).any() or
            (batch_labels[:half] != batch_labels[half:]).any())
        if not aligned:
            raise RuntimeError(
                'feature_cache: a sampler step is not [P x K visible; the '
                'same P x K identities infrared], position by position; '
                'paired caches need CrossModalIdentitySampler and '
                'train_dataloader.batch_size = 2 x num_ids x '
                'num_instances')
        vis.append(feats[:half])
        ir.append(feats[half:])
        labels.append(batch_labels[:half])
    # Step by step, rank by rank: the order of a single process drawing
    # world_size x num_ids identities per step (the sampler gives rank r
    # the r-th block of each step's identities), so a DDP run caches,
    # shuffles and batches exactly what a single-process run with the
    # same global batch does.
    per_rank = all_gather_object((vis, ir, labels))
    num_steps = max(len(part[0]) for part in per_rank)
    return tuple(
        torch.cat([
            part[i][step] for step in range(num_steps) for part in per_rank
            if step < len(part[i])
        ]) for i in range(3))


# ------------------------------------------------------------ entry point
def build_feature_cache(model,
                        cache_cfg: Dict,
                        dataset: Union[dict, Dataset],
                        sampler: Optional[Sampler] = None,
                        stage: str = '',
                        epoch: int = 0,
                        seed: Optional[int] = None,
                        diff_rank_seed: bool = False,
                        autocast: Optional[AutocastFactory] = None,
                        progress: bool = True) -> DataLoader:
    """Extract a stage's feature cache and return the loader that trains on
    it, batched as ``cache_cfg['mode']`` says.

    Args:
        model: The unwrapped model; ``extract_cache_features(batch)`` gives
            ``[B, D]`` features of ``pseudo_collate``-d samples.
        cache_cfg (dict): The stage's ``feature_cache`` settings (checked
            with :func:`check_cache_cfg`).
        dataset (dict | Dataset): The train set read with the extraction
            pipeline: a config (see :func:`cache_dataset_cfg`) or a dataset
            whose items are packed samples.
        sampler (Sampler, optional): The image loader's
            :class:`CrossModalIdentitySampler`, whose draw the ``'paired'``
            and ``'sampled'`` modes cache. Unused in ``'shuffled'`` mode.
        stage (str): The stage name, for the messages.
        epoch (int): The epoch whose sampler draw is cached: the stage's
            first, so a resumed run caches the same draw.
        seed (int, optional): Seed of the cache's shuffling (the run's).
        diff_rank_seed (bool): Whether the ranks shuffle with different
            seeds (``randomness.diff_rank_seed``).
        autocast (callable, optional): Returns the autocast context of the
            extraction (the precision the stage trains in); None: fp32.
        progress (bool): Log the extraction with a progress bar on rank 0.

    Returns:
        DataLoader: Batches of ``dict(inputs=[N, D], data_samples=dict(
        gt_label=[N], modality=[N]))``; in ``'paired'`` mode ``N = 2B``
        features, ``B`` visible then their ``B`` infrared partners.
    """
    cache_cfg = dict(cache_cfg)
    mode = check_cache_cfg(stage, cache_cfg)
    batch_size = int(cache_cfg.get('batch_size', 64))
    drop_last = bool(cache_cfg.get('drop_last', False))
    if mode == 'shuffled':
        cache = filter_modalities(
            _extract_every_image(model, cache_cfg, dataset, seed, autocast,
                                 progress), cache_cfg.get('modalities'))
    else:
        vis, ir, labels = _extract_sampler_draw(model, cache_cfg, dataset,
                                                sampler, epoch, autocast,
                                                progress)
        num_pairs = len(labels)
        cache = FeatureCacheDataset(
            torch.cat([vis, ir]), torch.cat([labels, labels]),
            torch.cat([
                torch.full((num_pairs, ), VIS_ID),
                torch.full((num_pairs, ), IR_ID)
            ]))
        if mode == 'paired':
            return _paired_loader(cache, num_pairs, batch_size, drop_last,
                                  None if diff_rank_seed else seed)
        cache = filter_modalities(cache, cache_cfg.get('modalities'))
    return Runner.build_dataloader(
        dict(
            dataset=cache,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=batch_size,
            num_workers=0,
            drop_last=drop_last,
            collate_fn=dict(type='default_collate')),
        seed=seed,
        diff_rank_seed=diff_rank_seed)


def _paired_loader(cache: FeatureCacheDataset, num_pairs: int, batch_size: int,
                   drop_last: bool, seed: Optional[int]) -> DataLoader:
    """Batches of ``batch_size`` pairs, shuffled every epoch (the pair
    sampler is reached by ``DistSamplerSeedHook`` through
    ``batch_sampler.sampler``)."""
    pair_sampler = DefaultSampler(range(num_pairs), shuffle=True, seed=seed)
    return DataLoader(
        cache,
        batch_sampler=PairedCacheBatchSampler(pair_sampler, num_pairs,
                                              batch_size, drop_last),
        num_workers=0,
        collate_fn=default_collate)
