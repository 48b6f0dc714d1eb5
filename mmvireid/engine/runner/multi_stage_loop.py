# Copyright (c) mmvireid contributors. All rights reserved.
"""A training loop whose epochs are a sequence of named stages.

The stage *plan* lives here (so ``max_epochs`` and validation follow from it
and a leaf config changes one list); switching the model and data between
stages is :class:`~mmvireid.engine.hooks.StageSwitchHook`'s job.
"""
import copy
import itertools
import logging
from typing import Dict, List, Optional, Sequence, Union

from mmengine.logging import print_log

from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmvireid.registry import LOOPS

__all__ = [
    'MultiStageTrainLoop', 'StageSpec', 'parse_stages',
    'shift_stage_schedulers'
]


class StageSpec(dict):
    """One stage: ``name``, ``epochs``, ``begin`` / ``end`` (absolute epochs),
    ``validate`` and optional ``feature_cache`` settings."""

    @property
    def name(self) -> str:
        return self['name']

    @property
    def begin(self) -> int:
        return self['begin']

    @property
    def end(self) -> int:
        return self['end']


def parse_stages(stages: Sequence[dict]) -> List[StageSpec]:
    """Validate a stage list and add absolute ``begin``/``end`` epochs.

    Args:
        stages: e.g. ``[dict(name='prompt', epochs=60, validate=False),
            dict(name='finetune', epochs=120)]``.

    Returns:
        list[StageSpec]: the same stages with ``begin``/``end`` filled in.
    """
    if not stages:
        raise ValueError('train_cfg.stages must list at least one stage, '
                         "e.g. [dict(name='finetune', epochs=10)]")
    parsed, begin, seen = [], 0, set()
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or 'name' not in stage \
                or 'epochs' not in stage:
            raise ValueError(
                f'train_cfg.stages[{i}] must be a dict with "name" and '
                f'"epochs", got {stage!r}')
        epochs = stage['epochs']
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f'train_cfg.stages[{i}] ("{stage["name"]}"): '
                             f'epochs must be a positive integer, got {epochs}')
        if stage['name'] in seen:
            raise ValueError(f'train_cfg.stages: duplicate stage name '
                             f'"{stage["name"]}"')
        seen.add(stage['name'])
        spec = StageSpec(copy.deepcopy(stage))
        spec.setdefault('validate', True)
        spec['epochs'] = int(epochs)
        spec['begin'], spec['end'] = begin, begin + int(epochs)
        begin = spec['end']
        parsed.append(spec)
    return parsed


def shift_stage_schedulers(cfg, stages: Sequence[dict]):
    """Stage-relative scheduler configs -> absolute ones (see
    :class:`MultiStageTrainLoop`).

    Args:
        cfg: ``param_scheduler`` of the config: ``dict(<stage>=[...])``, or
            anything else (returned unchanged).
        stages (list[dict]): The stage plan (``train_cfg.stages``).

    Returns:
        The scheduler configs with absolute ``begin``/``end`` epochs and
        ``t_initial=None`` resolved to the stage length.
    """
    if cfg is None or not isinstance(cfg, dict) or 'type' in cfg:
        return cfg  # a single (unstaged) scheduler list: leave it alone
    names = {s.name: s for s in parse_stages(stages)}
    shifted = {}
    for key, schedulers in cfg.items():
        if key not in names:
            # keyed by an optim wrapper that is not a stage: untouched
            shifted[key] = schedulers
            continue
        stage = names[key]
        if isinstance(schedulers, dict):
            schedulers = [schedulers]
        new_list = []
        for sched in schedulers:
            if not isinstance(sched, dict):
                new_list.append(sched)  # a built object: user's business
                continue
            sched = copy.deepcopy(sched)
            if not sched.get('by_epoch', True):
                raise ValueError(
                    f'param_scheduler["{key}"]: stage schedulers must be '
                    f'by_epoch=True, got {sched}')
            if 't_initial' in sched and sched['t_initial'] is None:
                # a cosine over the whole stage, however long it is
                sched['t_initial'] = stage['epochs']
            begin = sched.get('begin', 0)
            end = sched.get('end', stage['epochs'])
            if not 0 <= begin < end:
                raise ValueError(
                    f'param_scheduler["{key}"] {sched.get("type")}: '
                    f'begin={begin}, end={end} must satisfy 0 <= begin < '
                    f'end (epochs are relative to stage "{key}")')
            if begin >= stage['epochs']:
                # e.g. a decay planned for epoch 40 of a stage shortened
                # to 2 epochs: it never acts
                print_log(
                    f'param_scheduler["{key}"] {sched.get("type")} '
                    f'begins at epoch {begin}, after the end of stage '
                    f'"{key}" ({stage["epochs"]} epochs): it is not used',
                    logger='current',
                    level=logging.WARNING)
                continue
            # An end past the stage is fine: the scheduler only sets the
            # rates of this stage's optimizer, which no later stage
            # steps. It is not clipped, so that a shortened stage runs
            # the first epochs of the planned schedule (LinearLR's slope
            # depends on end).
            sched['begin'] = begin + stage.begin
            sched['end'] = end + stage.begin
            new_list.append(sched)
        shifted[key] = new_list
    return shifted


@LOOPS.register_module()
class MultiStageTrainLoop(EpochBasedTrainLoop):
    """Epoch-based training through named stages.

    ``max_epochs`` is the sum of the stages' epochs. Validation runs every
    ``val_interval`` epochs *counted from the start of each stage whose
    ``validate`` is True* and at the last epoch of such a stage (so a prompt
    stage with ``validate=False`` is never evaluated).

    Parameter schedulers are written **relative to their stage**: in
    ``param_scheduler=dict(prompt=[...], finetune=[...])`` (one list per
    stage, keyed like the optim wrappers), ``begin``/``end`` count epochs
    from the start of that stage and ``end`` defaults to the stage length.
    This loop shifts them to absolute epochs before the Runner builds them,
    so changing one stage's length (one key, e.g. ``--cfg-options
    train_cfg.stages.1.epochs=2``) needs no scheduler edits: an ``end`` past
    the stage is allowed (the stage stops first), a scheduler that would
    begin after the stage is dropped with a warning, and ``t_initial=None``
    (:class:`TimmCosineLR`) is the stage length.

    Args:
        runner: The runner.
        dataloader: The image training dataloader (config or object).
        stages (list[dict]): The stage plan, see :func:`parse_stages`.
        val_interval (int): Validation interval within validating stages.
        shift_param_schedulers (bool): Whether to shift stage-keyed scheduler
            configs to absolute epochs. Defaults to True.
        max_iters_per_epoch (int, optional): Stop every epoch after this
            many iterations (``tools/train.py --rehearse``). Defaults to
            None: whole epochs.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 stages: Sequence[dict],
                 val_interval: int = 1,
                 shift_param_schedulers: bool = True,
                 max_iters_per_epoch: Optional[int] = None) -> None:
        if max_iters_per_epoch is not None and (
                int(max_iters_per_epoch) != max_iters_per_epoch
                or max_iters_per_epoch < 1):
            raise ValueError('train_cfg.max_iters_per_epoch must be a '
                             f'positive int, got {max_iters_per_epoch!r}')
        self.max_iters_per_epoch = max_iters_per_epoch
        self.stages = parse_stages(stages)
        max_epochs = self.stages[-1].end
        val_stages = [s for s in self.stages if s['validate']]
        val_begin = val_stages[0].begin + 1 if val_stages else max_epochs + 1
        super().__init__(
            runner,
            dataloader,
            max_epochs=max_epochs,
            val_begin=val_begin,
            val_interval=val_interval)
        if shift_param_schedulers:
            self._shift_param_schedulers(runner)

    # ------------------------------------------------------------------ #
    def stage_at(self, epoch: int) -> StageSpec:
        """The stage that trains epoch ``epoch`` (0-based)."""
        for stage in self.stages:
            if stage.begin <= epoch < stage.end:
                return stage
        return self.stages[-1]

    def _shift_param_schedulers(self, runner) -> None:
        runner.param_schedulers = shift_stage_schedulers(
            runner.param_schedulers, self.stages)

    def run_epoch(self) -> None:
        """Iterate one epoch, or its first ``max_iters_per_epoch`` steps.

        The cap is for rehearsals and smoke tests: mmengine's
        ``num_batch_per_epoch`` slices the *dataset* to its first samples,
        which an identity sampler cannot draw aligned visible/infrared
        batches from, whereas this stops the sampler's own stream.
        """
        if self.max_iters_per_epoch is None:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(
                itertools.islice(self.dataloader, self.max_iters_per_epoch)):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run(self):
        """Launch training: like the parent, with stage-aware validation."""
        self.runner.call_hook('before_train')
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            if self._should_validate(self._epoch - 1):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train')
        return self.runner.model

    def _should_validate(self, epoch: int) -> bool:
        """Whether to validate after (0-based) ``epoch`` finished."""
        if self.runner.val_loop is None:
            return False
        stage = self.stage_at(epoch)
        if not stage['validate']:
            return False
        into_stage = epoch - stage.begin + 1
        return (into_stage % self.val_interval == 0 or epoch + 1 == stage.end
                or epoch + 1 == self._max_epochs)
