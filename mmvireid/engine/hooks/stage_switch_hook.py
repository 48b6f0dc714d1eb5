# Copyright (c) mmvireid contributors. All rights reserved.
"""Drive multi-stage training: switch the model, the data and the RNG."""
import copy
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_gather_object, get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, set_random_seed
from mmengine.utils import ProgressBar

from mmvireid.datasets.feature_cache import MODALITY_IDS, FeatureCacheDataset
from mmvireid.registry import HOOKS

__all__ = ['StageSwitchHook']


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
       iterates over image features of the whole train set, computed once at
       the stage start with the frozen image encoder (test-style pipeline,
       progress bar, gathered from all ranks so each rank holds the whole
       cache); other stages use the config's image dataloader.

    Calling it twice for the same epoch does nothing.

    ``feature_cache`` keys: ``pipeline`` (the extraction pipeline, required),
    ``batch_size`` (of the cached-feature loader, default 64, as CLIP-ReID and
    CSDN), ``extract_batch_size`` (default 64), ``num_workers`` (extraction
    loader, default 0), ``modalities`` (keep only these, e.g. ``['vis']``;
    default both).

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

    @staticmethod
    def _check_num_classes(model, dataset) -> None:
        """Fail early if the model's C differs from the train identities."""
        expected = getattr(model, 'num_classes', None)
        found = getattr(dataset, 'metainfo', {}).get('num_classes')
        if expected is not None and found is not None and expected != found:
            raise ValueError(
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
            loader = self._build_feature_loader(runner, stage.name, cache_cfg)
        else:
            loader = self._image_loader
        runner.train_loop.dataloader = loader
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)
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
    def _build_feature_loader(self, runner: Runner, stage: str,
                              cache_cfg: Dict):
        cache_cfg = dict(cache_cfg)
        unknown = set(cache_cfg) - {
            'pipeline', 'batch_size', 'extract_batch_size', 'num_workers',
            'modalities'
        }
        if unknown:
            raise KeyError(f'stage "{stage}": unknown feature_cache keys '
                           f'{sorted(unknown)}')
        dataset = self.extract_features(runner, cache_cfg)
        loader_cfg = dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=cache_cfg.get('batch_size', 64),
            num_workers=0,
            collate_fn=dict(type='default_collate'))
        return Runner.build_dataloader(
            loader_cfg,
            seed=runner.seed,
            diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed',
                                                      False))

    def extract_features(self, runner: Runner,
                         cache_cfg: Dict) -> FeatureCacheDataset:
        """Run the frozen image encoder over the whole train set once.

        Each rank extracts its shard; the parts are all-gathered and ordered
        by dataset index, so every rank holds the same complete cache with
        no sample missing or repeated.
        """
        if 'pipeline' not in cache_cfg:
            raise KeyError('feature_cache needs "pipeline": the test-style '
                           'pipeline used to extract cached features')
        dataset_cfg = copy.deepcopy(runner.cfg.train_dataloader.dataset)
        if 'pipeline' not in dataset_cfg:
            raise KeyError('feature_cache: train_dataloader.dataset must be a '
                           'dataset config with a "pipeline" key')
        dataset_cfg['pipeline'] = cache_cfg['pipeline']
        loader = Runner.build_dataloader(
            dict(
                dataset=dataset_cfg,
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=cache_cfg.get('extract_batch_size', 64),
                num_workers=cache_cfg.get('num_workers', 0),
                persistent_workers=False),
            seed=runner.seed)
        model = self._unwrap(runner)
        was_training = model.training
        model.eval()
        parts: List[tuple] = []
        progress = ProgressBar(len(loader.dataset)) if get_rank() == 0 \
            else None
        print_log(
            f'Caching image features of {len(loader.dataset)} train images',
            logger='current')
        with torch.no_grad():
            for batch in loader:
                feats = model.extract_cache_features(batch).float().cpu()
                for feat, sample in zip(feats, batch['data_samples']):
                    parts.append(
                        (sample.sample_idx, feat, int(sample.gt_label[0]),
                         MODALITY_IDS[sample.modality]))
                if progress is not None:
                    for _ in range(len(feats)):
                        progress.update()
        if progress is not None:
            print()
        model.train(was_training)
        gathered = {}
        for rank_part in all_gather_object(parts):
            for idx, feat, label, mod in rank_part:
                gathered[idx] = (feat, label, mod)  # padding repeats dedupe
        if len(gathered) != len(loader.dataset):
            raise RuntimeError(
                f'feature cache has {len(gathered)} entries for a dataset of '
                f'{len(loader.dataset)} images')
        order = sorted(gathered)
        keep = cache_cfg.get('modalities')
        if keep is not None:
            unknown = set(keep) - set(MODALITY_IDS)
            if unknown:
                raise ValueError(f'feature_cache.modalities: unknown '
                                 f'{sorted(unknown)}; use {sorted(MODALITY_IDS)}')
            keep_ids = {MODALITY_IDS[m] for m in keep}
            order = [i for i in order if gathered[i][2] in keep_ids]
        return FeatureCacheDataset(
            torch.stack([gathered[i][0] for i in order]),
            torch.tensor([gathered[i][1] for i in order]),
            torch.tensor([gathered[i][2] for i in order]))
