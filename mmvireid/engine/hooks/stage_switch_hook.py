# Copyright (c) mmvireid contributors. All rights reserved.
"""Drive multi-stage training: switch the model, the data and the RNG."""
import copy
import logging
import math
from contextlib import nullcontext
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.dataset import DefaultSampler, default_collate, pseudo_collate
from mmengine.dist import all_gather_object, get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner, set_random_seed
from mmengine.runner.amp import autocast
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Sampler

from mmvireid.datasets.feature_cache import MODALITY_IDS, FeatureCacheDataset
from mmvireid.models.wrappers import current_optim_wrapper
from mmvireid.registry import DATASETS, HOOKS

__all__ = ['StageSwitchHook', 'PairedCacheBatchSampler']

#: How a feature cache is extracted and batched, see :class:`StageSwitchHook`.
CACHE_MODES = ('shuffled', 'paired', 'sampled')
_CACHE_KEYS = ('mode', 'pipeline', 'batch_size', 'extract_batch_size',
               'num_workers', 'modalities', 'drop_last')


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


@HOOKS.register_module()
class StageSwitchHook(Hook):
    """Switch between the training stages of a :class:`MultiStageTrainLoop`.

    The hook decides *when*: before every epoch it looks up the stage of that
    epoch in ``runner.train_loop.stages`` (so a resumed run lands in the
    right stage with no extra state), and on a change it

    1. calls ``model.switch_stage(name)`` on the unwrapped model (the model
       decides *what* trains and prepares stage inputs, e.g. the text
       features of all identities);
    2. swaps the train dataloader: a stage with ``feature_cache=dict(...)``
       iterates over cached image features of the train set, computed once
       at the stage start with the frozen image encoder (test-style
       pipeline, progress bar, gathered from all ranks so each rank holds
       the whole cache; see the modes below); other stages use the config's
       image dataloader.

    Calling it twice for the same epoch does nothing.

    ``feature_cache`` keys:

    * ``mode``: how the cache is drawn and batched (default
      ``'shuffled'``):

      - ``'shuffled'``: every train image once (dataset order); batches of
        ``batch_size`` features shuffled every epoch (CLIP-ReID stage 1).
      - ``'paired'``: the images of one epoch's draw of the image loader's
        :class:`CrossModalIdentitySampler` (drawn for the stage's first
        epoch, so a resumed run redraws the same), extracted one sampler
        step at a time; visible position ``j`` and infrared position ``j``
        of a step share the identity and are cached as a pair. Each batch
        holds ``batch_size`` pairs, shuffled every epoch: ``[B visible; B
        infrared]`` features, position-aligned (CSDN stage 1, see
        :class:`PairedCacheBatchSampler`).
      - ``'sampled'``: the same draw, its features shuffled one by one
        (CSDN stage 2, which caches the identity-sampled images of both
        modalities again).

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

    A model may also define ``prepare_stage_data(stage_name, train_dataset)``;
    it is called after ``switch_stage`` on every stage entry (e.g. to encode
    per-image descriptions once).

    Args:
        reseed_every_epoch (bool): Re-seed python/numpy/torch RNGs with
            ``runner.seed + epoch`` at every epoch start. Augmentation and
            sampling then depend only on the epoch, so a run resumed from any
            epoch checkpoint continues exactly like the uninterrupted run.
            Defaults to True.
    """

    priority = 'ABOVE_NORMAL'  # before DistSamplerSeedHook sets the epoch

    def __init__(self, reseed_every_epoch: bool = True) -> None:
        self.reseed_every_epoch = reseed_every_epoch
        self.current_stage: Optional[str] = None
        self._image_loader = None

    # ------------------------------------------------------------------ #
    @staticmethod
    def _unwrap(runner: Runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner: Runner) -> None:
        loop = runner.train_loop
        if not hasattr(loop, 'stages'):
            raise TypeError(
                'StageSwitchHook needs train_cfg=dict(type='
                '"MultiStageTrainLoop", stages=[...]), got train loop '
                f'{type(loop).__name__}')
        model = self._unwrap(runner)
        if not hasattr(model, 'switch_stage'):
            raise TypeError(f'{type(model).__name__} has no switch_stage(); '
                            'StageSwitchHook drives staged models only')
        supported = getattr(model, 'STAGES', None)
        for stage in loop.stages:
            if supported is not None and stage.name not in supported:
                raise ValueError(
                    f'train_cfg.stages names stage "{stage.name}" but '
                    f'{type(model).__name__} supports {list(supported)}')
        self._check_num_classes(model, loop.dataloader.dataset)
        self._image_loader = loop.dataloader
        self.current_stage = None

    # -------------------------------------------------- checkpoints
    @staticmethod
    def _plan(loop) -> List[dict]:
        return [dict(name=s.name, epochs=s['epochs']) for s in loop.stages]

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'stages'):
            checkpoint.setdefault('meta', {})['stage_plan'] = self._plan(loop)

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Refuse to resume a checkpoint that this stage plan cannot
        continue (see :func:`check_resume_plan`)."""
        if not getattr(runner, '_resume', False):
            return
        loop = runner.train_loop
        if hasattr(loop, 'stages'):
            check_resume_plan(loop.stages, checkpoint.get('meta') or {})

    @staticmethod
    def _check_num_classes(model, dataset) -> None:
        """Fail early if the model's C differs from the train identities."""
        expected = getattr(model, 'num_classes', None)
        found = getattr(dataset, 'metainfo', {}).get('num_classes')
        if expected is not None and found is not None and expected != found:
            from mmvireid.utils.errors import UserInputError
            raise UserInputError(
                f'model.num_classes={expected} but the train set '
                f'({type(dataset).__name__}) has {found} identities; set '
                f'model.num_classes={found} in the config (or '
                f'--cfg-options model.num_classes={found})')

    def before_train_epoch(self, runner: Runner) -> None:
        epoch = runner.epoch
        if self.reseed_every_epoch and runner.seed is not None:
            deterministic = runner.cfg.get('randomness', {}).get(
                'deterministic', False)
            set_random_seed(runner.seed + epoch, deterministic=deterministic)
        stage = runner.train_loop.stage_at(epoch)
        if stage.name == self.current_stage:
            return
        print_log(
            f'Stage "{stage.name}" (epochs {stage.begin + 1}-{stage.end} of '
            f'{runner.max_epochs}) starts at epoch {epoch + 1}',
            logger='current')
        model = self._unwrap(runner)
        model.switch_stage(stage.name)
        if hasattr(model, 'prepare_stage_data'):
            # e.g. EEES encodes every train description once per stage
            model.prepare_stage_data(stage.name,
                                     self._image_loader.dataset)
        self._forget_train_scalars(runner)
        cache_cfg = stage.get('feature_cache')
        if cache_cfg:
            loader = self._build_feature_loader(runner, stage, cache_cfg)
        else:
            loader = self._image_loader
        runner.train_loop.dataloader = loader
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)
        elif hasattr(getattr(loader, 'batch_sampler', None), 'sampler') \
                and hasattr(loader.batch_sampler.sampler, 'set_epoch'):
            loader.batch_sampler.sampler.set_epoch(epoch)
        self.current_stage = stage.name

    @staticmethod
    def _forget_train_scalars(runner: Runner) -> None:
        """Drop the previous stage's smoothed losses from the message hub,
        so the log shows only the losses the current stage computes."""
        scalars = runner.message_hub.log_scalars
        for key in [k for k in scalars if k.startswith('train/')]:
            if key not in ('train/lr', 'train/time', 'train/data_time') \
                    and not key.endswith('lr'):
                scalars.pop(key)

    # ------------------------------------------------------------------ #
    @staticmethod
    def _check_cache_cfg(stage: str, cache_cfg: Dict) -> str:
        """Validate the keys of a ``feature_cache`` dict; return its mode."""
        unknown = set(cache_cfg) - set(_CACHE_KEYS)
        if unknown:
            raise KeyError(f'stage "{stage}": unknown feature_cache keys '
                           f'{sorted(unknown)}; known keys are '
                           f'{list(_CACHE_KEYS)}')
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

    def _build_feature_loader(self, runner: Runner, stage, cache_cfg: Dict):
        cache_cfg = dict(cache_cfg)
        name = getattr(stage, 'name', stage)
        mode = self._check_cache_cfg(name, cache_cfg)
        batch_size = int(cache_cfg.get('batch_size', 64))
        drop_last = bool(cache_cfg.get('drop_last', False))
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        if mode == 'shuffled':
            dataset = self.extract_features(runner, cache_cfg)
        else:
            # the draw of the stage's first epoch, also after a resume
            begin = getattr(stage, 'begin', runner.epoch)
            vis, ir, labels = self.extract_paired_features(
                runner, cache_cfg, epoch=begin)
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
            dataset = self._filter_modalities(dataset,
                                              cache_cfg.get('modalities'))
        loader_cfg = dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=batch_size,
            num_workers=0,
            drop_last=drop_last,
            collate_fn=dict(type='default_collate'))
        return Runner.build_dataloader(
            loader_cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)

    @staticmethod
    def _filter_modalities(dataset: FeatureCacheDataset,
                           keep) -> FeatureCacheDataset:
        """Keep the features of the modalities in ``keep`` (None: all)."""
        if keep is None:
            return dataset
        unknown = set(keep) - set(MODALITY_IDS)
        if unknown:
            raise ValueError(f'feature_cache.modalities: unknown '
                             f'{sorted(unknown)}; use {sorted(MODALITY_IDS)}')
        keep_ids = torch.tensor([MODALITY_IDS[m] for m in keep])
        mask = torch.isin(dataset.modalities, keep_ids)
        return FeatureCacheDataset(dataset.feats[mask], dataset.labels[mask],
                                   dataset.modalities[mask])

    @staticmethod
    def _cache_dataset_cfg(runner: Runner, cache_cfg: Dict) -> dict:
        """The train dataset config with the extraction pipeline."""
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

    @staticmethod
    def _autocast(runner: Runner, model):
        """Autocast of the current stage's optim wrapper (``--amp``): the
        frozen encoder extracts the cache in the precision it trains in."""
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if isinstance(optim_wrapper, (OptimWrapper, OptimWrapperDict)):
            try:
                optim_wrapper = current_optim_wrapper(model, optim_wrapper)
            except (KeyError, RuntimeError):
                optim_wrapper = None
            if isinstance(optim_wrapper, AmpOptimWrapper):
                return autocast(dtype=optim_wrapper.cast_dtype)
        return nullcontext()

    def _run_extraction(self, runner: Runner, loader, num_images: int):
        """Yield ``(batch, feats)`` over ``loader`` with the model in eval
        mode (restored afterwards) and a progress bar on rank 0."""
        model = self._unwrap(runner)
        was_training = model.training
        model.eval()
        print_log(
            f'Caching image features of {num_images} train images',
            logger='current')
        progress = ProgressBar(num_images) if get_rank() == 0 else None
        try:
            with torch.no_grad(), self._autocast(runner, model):
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

    def extract_features(self, runner: Runner,
                         cache_cfg: Dict) -> FeatureCacheDataset:
        """Run the frozen image encoder over the whole train set once
        (``'shuffled'`` mode).

        Each rank extracts its shard; the parts are all-gathered and ordered
        by dataset index, so every rank holds the same complete cache with
        no sample missing or repeated.
        """
        loader = Runner.build_dataloader(
            dict(
                dataset=self._cache_dataset_cfg(runner, cache_cfg),
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=cache_cfg.get('extract_batch_size', 64),
                num_workers=cache_cfg.get('num_workers', 0),
                persistent_workers=False),
            seed=runner.seed)
        parts: List[tuple] = []
        for batch, feats in self._run_extraction(runner, loader,
                                                 len(loader.dataset)):
            for feat, sample in zip(feats, batch['data_samples']):
                parts.append(
                    (sample.sample_idx, feat, int(sample.gt_label[0]),
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
        return self._filter_modalities(dataset, cache_cfg.get('modalities'))

    def extract_paired_features(
            self, runner: Runner, cache_cfg: Dict,
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
        sampler = self._image_loader.sampler
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
        dataset = DATASETS.build(self._cache_dataset_cfg(runner, cache_cfg))
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
        for batch, feats in self._run_extraction(runner, loader,
                                                 len(indices)):
            samples = batch['data_samples']
            batch_labels = torch.tensor([int(s.gt_label[0]) for s in samples])
            mods = torch.tensor([MODALITY_IDS[s.modality] for s in samples])
            if len(samples) != step or bool(
                    (mods[:half] != MODALITY_IDS['vis']).any()
                    or (mods[half:] != MODALITY_IDS['ir']).any()
                    or (batch_labels[:half] != batch_labels[half:]).any()):
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
                part[i][step] for step in range(num_steps)
                for part in per_rank if step < len(part[i])
            ]) for i in range(3))


def _spans(plan: List[dict]) -> List[Tuple[str, int, int]]:
    """``(name, begin, end)`` epochs of each stage of a plan."""
    out, begin = [], 0
    for stage in plan:
        out.append((stage['name'], begin, begin + stage['epochs']))
        begin += stage['epochs']
    return out


def check_resume_plan(stages, meta: dict) -> None:
    """Refuse a resume that the stage plan ``stages`` cannot continue.

    Args:
        stages (list[dict]): This config's ``train_cfg.stages``.
        meta (dict): The checkpoint's ``meta`` (``epoch``, and the
            ``stage_plan`` it was trained with when it is a mmvireid one).

    Raises:
        UserInputError: The checkpoint was saved past the plan's end, or by
            a plan whose finished part differs (another order, names or
            lengths of finished stages; the stage in progress and later
            ones may change). A finished plan only warns.
    """
    from mmvireid.engine.runner.multi_stage_loop import parse_stages
    from mmvireid.utils.errors import UserInputError
    epoch = meta.get('epoch')
    if epoch is None:
        return
    stages = parse_stages(stages)
    plan = [dict(name=s.name, epochs=s['epochs']) for s in stages]
    text = ', '.join(f'{s["name"]} {s["epochs"]}' for s in plan)
    end = stages[-1].end
    if epoch > end:
        raise UserInputError(
            f'The checkpoint to resume was saved after epoch {epoch}, past '
            f'the end of this config\'s stage plan ({text}: {end} epochs). '
            'Lengthen a stage (train_cfg.stages) to train on, or evaluate '
            'the checkpoint with tools/test.py.')
    saved = meta.get('stage_plan')
    if saved:
        started_saved = [span for span in _spans(saved) if span[1] < epoch]
        started_now = [span for span in _spans(plan) if span[1] < epoch]
        # the same stages started at the same epochs, and every stage the
        # checkpoint had finished has the same length now
        same = [(n, b) for n, b, _ in started_saved] == \
            [(n, b) for n, b, _ in started_now] and all(
                old_end == new_end
                for (_, _, old_end), (_, _, new_end) in zip(
                    started_saved, started_now) if old_end <= epoch)
        if not same:
            saved_text = ', '.join(f'{s["name"]} {s["epochs"]}'
                                   for s in saved)
            raise UserInputError(
                f'The checkpoint to resume (epoch {epoch}) was trained with '
                f'the stage plan [{saved_text}], whose first {epoch} epochs '
                f'this config\'s plan [{text}] does not repeat. Resume with '
                'the plan it was trained with; only the stage in progress and '
                'later ones may change.')
    if epoch == end:
        print_log(
            f'The checkpoint to resume already finished the stage plan '
            f'({text}): nothing is left to train.',
            logger='current',
            level=logging.WARNING)
