# Copyright (c) mmvireid contributors. All rights reserved.
"""Feature caches of the prompt stages: extraction and batching.

A stage with ``feature_cache=dict(...)`` trains on image features computed
once, at the stage start, by the frozen image encoder.
:class:`FeatureCacheBuilder` extracts them (sharded across ranks and
gathered, so every rank holds the whole cache) and builds the stage's
dataloader; :class:`~mmvireid.engine.hooks.StageSwitchHook` decides when.
The cache dataset, its pair batch sampler and the modality filter live with
the data in :mod:`mmvireid.datasets.feature_cache`.

``feature_cache`` keys (checked by :func:`check_cache_cfg`, also at start-up
by the tools' preflight):

* ``mode``: how the cache is drawn and batched (default ``'shuffled'``):

  - ``'shuffled'``: every train image once (dataset order); batches of
    ``batch_size`` features shuffled every epoch (CLIP-ReID stage 1).
  - ``'paired'``: the images of one epoch's draw of the image loader's
    :class:`CrossModalIdentitySampler` (drawn for the stage's first epoch,
    so a resumed run redraws the same), extracted one sampler step at a
    time; visible position ``j`` and infrared position ``j`` of a step share
    the identity and are cached as a pair. Each batch holds ``batch_size``
    pairs, shuffled every epoch: ``[B visible; B infrared]`` features,
    position-aligned (CSDN stage 1, see :class:`PairedCacheBatchSampler`).
  - ``'sampled'``: the same draw, its features shuffled one by one (CSDN
    stage 2, which caches the identity-sampled images of both modalities
    again).

* ``pipeline``: the extraction pipeline; defaults to the pipeline of
  ``val_dataloader.dataset`` (else ``test_dataloader.dataset``), the
  test-style transforms both references use.
* ``batch_size``: features per batch (pairs per batch in ``'paired'``
  mode); default 64.
* ``drop_last``: drop the last incomplete batch of every epoch (CSDN
  iterates ``len // batch_size`` batches); default False.
* ``extract_batch_size`` (``'shuffled'`` only; default 64): images per
  extraction batch. The other modes extract one sampler step (the image
  loader's batch) at a time, as CSDN does, which matters when the model
  extracts with BatchNorm on batch statistics.
* ``num_workers``: extraction loader workers, default 0.
* ``modalities`` (not in ``'paired'`` mode): keep only these, e.g.
  ``['vis']``; default both.
"""
import copy
from contextlib import nullcontext
from typing import Dict, List, Tuple

import torch
from mmengine.dataset import DefaultSampler, default_collate, pseudo_collate
from mmengine.dist import all_gather_object, get_rank
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from mmengine.runner.amp import autocast
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader

from mmvireid.datasets.feature_cache import (MODALITY_IDS, FeatureCacheDataset,
                                             PairedCacheBatchSampler,
                                             filter_modalities)
from mmvireid.models.wrappers import current_optim_wrapper
from mmvireid.registry import DATASETS

__all__ = ['FeatureCacheBuilder', 'check_cache_cfg', 'CACHE_MODES']

#: How a feature cache is extracted and batched (see the module docstring).
CACHE_MODES = ('shuffled', 'paired', 'sampled')
CACHE_KEYS = ('mode', 'pipeline', 'batch_size', 'extract_batch_size',
              'num_workers', 'modalities', 'drop_last')


def check_cache_cfg(stage: str, cache_cfg: Dict) -> str:
    """Validate the keys of a ``feature_cache`` dict; return its mode."""
    unknown = set(cache_cfg) - set(CACHE_KEYS)
    if unknown:
        raise KeyError(f'stage "{stage}": unknown feature_cache keys '
                       f'{sorted(unknown)}; known keys are '
                       f'{list(CACHE_KEYS)}')
    mode = cache_cfg.get('mode', 'shuffled')
    if mode not in CACHE_MODES:
        raise ValueError(f'stage "{stage}": feature_cache.mode must be '
                         f'one of {CACHE_MODES}, got {mode!r}')
    refused = {
        'paired': ('extract_batch_size', 'modalities'),
        'sampled': ('extract_batch_size', ),
        'shuffled': ()
    }[mode]
    for key in refused:
        if key in cache_cfg:
            raise ValueError(
                f'stage "{stage}": feature_cache.{key} does not apply to '
                f'mode={mode!r} (it extracts one identity-sampler step '
                'per batch and keeps visible/infrared pairs); remove it')
    batch_size = cache_cfg.get('batch_size', 64)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f'stage "{stage}": feature_cache.batch_size must '
                         f'be a positive int, got {batch_size!r}')
    return mode


class FeatureCacheBuilder:
    """Extract the feature cache of a stage and build its dataloader.

    Args:
        runner (Runner): The runner (model, configs, seed, optim wrapper).
        image_loader (DataLoader): The image train loader; the paired modes
            extract one draw of its identity sampler.
    """

    def __init__(self, runner: Runner, image_loader: DataLoader) -> None:
        self.runner = runner
        self.image_loader = image_loader

    @property
    def model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def build_loader(self, stage, cache_cfg: Dict) -> DataLoader:
        """The dataloader of a feature-cache stage: extract the cache with
        the frozen encoder, then batch it as ``cache_cfg['mode']`` says."""
        runner = self.runner
        cache_cfg = dict(cache_cfg)
        name = getattr(stage, 'name', stage)
        mode = check_cache_cfg(name, cache_cfg)
        batch_size = int(cache_cfg.get('batch_size', 64))
        drop_last = bool(cache_cfg.get('drop_last', False))
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        if mode == 'shuffled':
            dataset = self.extract_features(cache_cfg)
        else:
            # the draw of the stage's first epoch, also after a resume
            begin = getattr(stage, 'begin', runner.epoch)
            vis, ir, labels = self.extract_paired_features(
                cache_cfg, epoch=begin)
            num_pairs = len(labels)
            dataset = FeatureCacheDataset(
                torch.cat([vis, ir]), torch.cat([labels, labels]),
                torch.cat([
                    torch.full((num_pairs, ), MODALITY_IDS['vis']),
                    torch.full((num_pairs, ), MODALITY_IDS['ir'])
                ]))
            if mode == 'paired':
                pair_sampler = DefaultSampler(
                    range(num_pairs),
                    shuffle=True,
                    seed=None if diff_rank_seed else runner.seed)
                return DataLoader(
                    dataset,
                    batch_sampler=PairedCacheBatchSampler(
                        pair_sampler, num_pairs, batch_size, drop_last),
                    num_workers=0,
                    collate_fn=default_collate)
            dataset = filter_modalities(dataset, cache_cfg.get('modalities'))
        loader_cfg = dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=batch_size,
            num_workers=0,
            drop_last=drop_last,
            collate_fn=dict(type='default_collate'))
        return Runner.build_dataloader(
            loader_cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)

    def _cache_dataset_cfg(self, cache_cfg: Dict) -> dict:
        """The train dataset config with the extraction pipeline."""
        runner = self.runner
        dataset_cfg = copy.deepcopy(runner.cfg.train_dataloader.dataset)
        if 'pipeline' not in dataset_cfg:
            raise KeyError('feature_cache: train_dataloader.dataset must be a '
                           'dataset config with a "pipeline" key')
        pipeline = cache_cfg.get('pipeline')
        if pipeline is None:
            for key in ('val_dataloader', 'test_dataloader'):
                loader_cfg = runner.cfg.get(key) or {}
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

    def _autocast(self, model):
        """Autocast of the current stage's optim wrapper (``--amp``): the
        frozen encoder extracts the cache in the precision it trains in."""
        optim_wrapper = getattr(self.runner, 'optim_wrapper', None)
        if isinstance(optim_wrapper, (OptimWrapper, OptimWrapperDict)):
            try:
                optim_wrapper = current_optim_wrapper(model, optim_wrapper)
            except (KeyError, RuntimeError):
                optim_wrapper = None
            if isinstance(optim_wrapper, AmpOptimWrapper):
                return autocast(dtype=optim_wrapper.cast_dtype)
        return nullcontext()

    def _run_extraction(self, loader, num_images: int):
        """Yield ``(batch, feats)`` over ``loader`` with the model in eval
        mode (restored afterwards) and a progress bar on rank 0."""
        model = self.model
        was_training = model.training
        model.eval()
        print_log(
            f'Caching image features of {num_images} train images',
            logger='current')
        progress = ProgressBar(num_images) if get_rank() == 0 else None
        try:
            with torch.no_grad(), self._autocast(model):
                for batch in loader:
                    feats = model.extract_cache_features(batch).float().cpu()
                    yield batch, feats
                    if progress is not None:
                        for _ in range(len(feats)):
                            progress.update()
        finally:
            if progress is not None:
                print()
            model.train(was_training)

    def extract_features(self, cache_cfg: Dict) -> FeatureCacheDataset:
        """Run the frozen image encoder over the whole train set once
        (``'shuffled'`` mode).

        Each rank extracts its shard; the parts are all-gathered and ordered
        by dataset index, so every rank holds the same complete cache with
        no sample missing or repeated.
        """
        runner = self.runner
        loader = Runner.build_dataloader(
            dict(
                dataset=self._cache_dataset_cfg(cache_cfg),
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=cache_cfg.get('extract_batch_size', 64),
                num_workers=cache_cfg.get('num_workers', 0),
                persistent_workers=False),
            seed=runner.seed)
        parts: List[tuple] = []
        for batch, feats in self._run_extraction(loader, len(loader.dataset)):
            for feat, sample in zip(feats, batch['data_samples']):
                parts.append((sample.sample_idx, feat, int(sample.gt_label[0]),
                              MODALITY_IDS[sample.modality]))
        gathered = {}
        for rank_part in all_gather_object(parts):
            for idx, feat, label, mod in rank_part:
                gathered[idx] = (feat, label, mod)  # padding repeats dedupe
        if len(gathered) != len(loader.dataset):
            raise RuntimeError(
                f'feature cache has {len(gathered)} entries for a dataset of '
                f'{len(loader.dataset)} images')
        order = sorted(gathered)
        dataset = FeatureCacheDataset(
            torch.stack([gathered[i][0] for i in order]),
            torch.tensor([gathered[i][1] for i in order]),
            torch.tensor([gathered[i][2] for i in order]))
        return filter_modalities(dataset, cache_cfg.get('modalities'))

    def extract_paired_features(
            self, cache_cfg: Dict,
            epoch: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Extract the images of one epoch's identity-sampler draw as
        visible/infrared pairs (``'paired'`` and ``'sampled'`` modes).

        The image loader's sampler (a :class:`CrossModalIdentitySampler`:
        each step is ``P x K`` visible then the same ``P x K`` infrared
        indices) is set to ``epoch`` and iterated once; the train set with
        the cache pipeline is read in that order, one sampler step per
        extraction batch. Under DDP every rank extracts its own share of
        the draw and the pairs are all-gathered in the order of a single
        process with the same global batch, so every rank holds the same
        cache.

        Returns:
            tuple[Tensor, Tensor, Tensor]: visible features ``[M, D]``, their
            infrared partners ``[M, D]`` and the ``M`` shared labels.
        """
        sampler = self.image_loader.sampler
        if not (hasattr(sampler, 'num_ids')
                and hasattr(sampler, 'num_instances')):
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
        dataset = DATASETS.build(self._cache_dataset_cfg(cache_cfg))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        loader = DataLoader(
            dataset,
            batch_size=step,
            sampler=indices,
            num_workers=cache_cfg.get('num_workers', 0),
            collate_fn=pseudo_collate)
        half = step // 2
        vis, ir, labels = [], [], []
        for batch, feats in self._run_extraction(loader, len(indices)):
            samples = batch['data_samples']
            batch_labels = torch.tensor([int(s.gt_label[0]) for s in samples])
            mods = torch.tensor([MODALITY_IDS[s.modality] for s in samples])
            aligned = len(samples) == step and not bool(
                (mods[:half] != MODALITY_IDS['vis']).any()
                or (mods[half:] != MODALITY_IDS['ir']).any()
                or (batch_labels[:half] != batch_labels[half:]).any())
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
