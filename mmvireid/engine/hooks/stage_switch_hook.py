# Copyright (c) mmvireid contributors. All rights reserved.
"""Drive multi-stage training: switch the model, the data and the RNG."""
import logging
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, set_random_seed

from mmvireid.registry import HOOKS
from ..feature_cache import FeatureCacheBuilder

__all__ = ['StageSwitchHook', 'check_resume_plan']


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

    ``feature_cache`` settings and modes: :mod:`mmvireid.engine.feature_cache`.

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
            deterministic = runner.cfg.get('randomness',
                                           {}).get('deterministic', False)
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
            model.prepare_stage_data(stage.name, self._image_loader.dataset)
        self._forget_train_scalars(runner)
        cache_cfg = stage.get('feature_cache')
        if cache_cfg:
            loader = FeatureCacheBuilder(runner,
                                         self._image_loader).build_loader(
                                             stage, cache_cfg)
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
            saved_text = ', '.join(f'{s["name"]} {s["epochs"]}' for s in saved)
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
