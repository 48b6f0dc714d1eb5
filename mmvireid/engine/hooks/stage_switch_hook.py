# Copyright (c) mmvireid contributors. All rights reserved.
"""Drive multi-stage training: reseed, switch the model, swap the data."""
from functools import partial
from typing import Callable, ContextManager, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner, set_random_seed
from mmengine.runner.amp import autocast

from mmvireid.datasets.feature_cache import (build_feature_cache,
                                             cache_dataset_cfg)
from mmvireid.models.wrappers import current_optim_wrapper
from mmvireid.registry import HOOKS
from ..runner.multi_stage_loop import check_resume_plan

__all__ = ['StageSwitchHook', 'enter_stage']


def enter_stage(model, name: str, train_dataset) -> None:
    """Put ``model`` in stage ``name``: ``model.switch_stage(name)`` (the
    model decides what trains and builds its stage inputs, e.g. the text
    features of all identities), then ``model.prepare_stage_data(name,
    train_dataset)`` if the model defines it (e.g. EEES encodes every train
    description once per stage).

    Args:
        model: The unwrapped model.
        name (str): The stage to enter.
        train_dataset: The image train set (its items' texts and paths).
    """
    model.switch_stage(name)
    if hasattr(model, 'prepare_stage_data'):
        model.prepare_stage_data(name, train_dataset)


@HOOKS.register_module()
class StageSwitchHook(Hook):
    """Switch between the training stages of a :class:`MultiStageTrainLoop`.

    Before every epoch the hook

    1. reseeds the RNGs with ``runner.seed + epoch``;
    2. looks up the epoch's stage in ``runner.train_loop.stages`` and, when
       it is not the model's ``current_stage`` (the one record of the
       stage, so a resumed run lands in the right stage with no extra
       state), enters it with :func:`enter_stage`;
    3. on a stage entry and at the first epoch of a run, swaps the train
       dataloader: a stage with ``feature_cache=dict(...)`` iterates over
       image features of the train set that
       :func:`~mmvireid.datasets.feature_cache.build_feature_cache` computes
       once, at the stage start, with the frozen image encoder; other
       stages use the config's image dataloader.

    Calling it twice for the same epoch does nothing. The plan itself, its
    validation and :func:`check_resume_plan` live with
    :class:`MultiStageTrainLoop`; the hook records the plan in every
    checkpoint's ``meta['stage_plan']`` and checks it on resume.

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
        self._image_loader = None
        # the loop starts every run with the image loader, whatever stage
        # the model is in: the first epoch of a run always sets the loader
        self._loader_set = False

    @staticmethod
    def _unwrap(runner: Runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner: Runner) -> None:
        loop = runner.train_loop  # built here: it validates the plan
        if not hasattr(loop, 'stages'):
            raise TypeError(
                'StageSwitchHook needs train_cfg=dict(type='
                '"MultiStageTrainLoop", stages=[...]), got train loop '
                f'{type(loop).__name__}')
        model = self._unwrap(runner)
        if not hasattr(model, 'switch_stage'):
            raise TypeError(f'{type(model).__name__} has no switch_stage(); '
                            'StageSwitchHook drives staged models only')
        self._image_loader = loop.dataloader
        self._loader_set = False

    # ------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'stages'):
            checkpoint.setdefault('meta', {})['stage_plan'] = [
                dict(name=s.name, epochs=s['epochs']) for s in loop.stages
            ]

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Refuse to resume a checkpoint that this stage plan cannot
        continue (see :func:`check_resume_plan`)."""
        if not getattr(runner, '_resume', False):
            return
        loop = runner.train_loop
        if hasattr(loop, 'stages'):
            check_resume_plan(loop.stages, checkpoint.get('meta') or {})

    # ----------------------------------------------------------- switch
    def before_train_epoch(self, runner: Runner) -> None:
        epoch = runner.epoch
        if self.reseed_every_epoch and runner.seed is not None:
            deterministic = runner.cfg.get('randomness',
                                           {}).get('deterministic', False)
            set_random_seed(runner.seed + epoch, deterministic=deterministic)
        stage = runner.train_loop.stage_at(epoch)
        model = self._unwrap(runner)
        entering = stage.name != getattr(model, 'current_stage', None)
        if not entering and self._loader_set:
            return
        print_log(
            f'Stage "{stage.name}" (epochs {stage.begin + 1}-{stage.end} of '
            f'{runner.max_epochs}) starts at epoch {epoch + 1}',
            logger='current')
        enter_stage(model, stage.name, self._image_loader.dataset)
        self._forget_train_scalars(runner)
        cache_cfg = stage.get('feature_cache')
        if cache_cfg:
            loader = build_feature_cache(
                model,
                cache_cfg,
                cache_dataset_cfg(runner.cfg, cache_cfg),
                self._image_loader.sampler,
                stage=stage.name,
                # the draw of the stage's first epoch, also after a resume
                epoch=stage.begin,
                seed=runner.seed,
                diff_rank_seed=runner._randomness_cfg.get(
                    'diff_rank_seed', False),
                autocast=self._extraction_autocast(runner, model))
        else:
            loader = self._image_loader
        runner.train_loop.dataloader = loader
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)
        elif hasattr(getattr(loader, 'batch_sampler', None), 'sampler') \
                and hasattr(loader.batch_sampler.sampler, 'set_epoch'):
            loader.batch_sampler.sampler.set_epoch(epoch)
        self._loader_set = True

    @staticmethod
    def _extraction_autocast(runner: Runner,
                             model) -> Optional[Callable[[], ContextManager]]:
        """The autocast of the current stage's optim wrapper (``--amp``):
        the frozen encoder extracts the cache in the precision it trains
        in. None (fp32) without an AMP wrapper."""
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if not isinstance(optim_wrapper, (OptimWrapper, OptimWrapperDict)):
            return None
        try:
            optim_wrapper = current_optim_wrapper(model, optim_wrapper)
        except (KeyError, RuntimeError):
            return None
        if isinstance(optim_wrapper, AmpOptimWrapper):
            return partial(autocast, dtype=optim_wrapper.cast_dtype)
        return None

    @staticmethod
    def _forget_train_scalars(runner: Runner) -> None:
        """Drop the previous stage's smoothed losses from the message hub,
        so the log shows only the losses the current stage computes."""
        scalars = runner.message_hub.log_scalars
        for key in [k for k in scalars if k.startswith('train/')]:
            if key not in ('train/lr', 'train/time', 'train/data_time') \
                    and not key.endswith('lr'):
                scalars.pop(key)
