# Copyright (c) mmvireid contributors. All rights reserved.
"""A training loop whose epochs are a sequence of named stages.

The stage *plan* lives here (so ``max_epochs`` and validation follow from it
and a leaf config changes one list), and so does its validation: every
stage's keys and ``feature_cache`` settings are checked when the plan is
parsed, and the stage names and class count against the model when the loop
is built, so a typo in the last stage fails before the first epoch.
Switching the model and data between stages is
:class:`~mmvireid.engine.hooks.StageSwitchHook`'s job.
"""
import copy
import itertools
import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmvireid.datasets.feature_cache import check_cache_cfg
from mmvireid.registry import LOOPS
from mmvireid.utils.errors import UserInputError, closest_names
from mmvireid.utils.preflight import check_num_classes

__all__ = [
    'MultiStageTrainLoop', 'StageSpec', 'parse_stages',
    'shift_stage_schedulers', 'check_resume_plan', 'STAGE_KEYS'
]

#: The keys of a stage of ``train_cfg.stages``.
STAGE_KEYS = ('name', 'epochs', 'validate', 'feature_cache')


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


def _check_stage(i: int, stage) -> None:
    """Refuse a stage dict with unknown keys or bad values."""
    where = f'train_cfg.stages[{i}]'
    if not isinstance(stage, dict) or 'name' not in stage \
            or 'epochs' not in stage:
        raise UserInputError(
            f'{where} must be a dict with "name" and "epochs", got '
            f'{stage!r}')
    name = stage['name']
    for key in set(stage) - set(STAGE_KEYS):
        close = closest_names(key, STAGE_KEYS, n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ''
        raise UserInputError(
            f'{where} ("{name}"): unknown key "{key}"; a stage has '
            f'{list(STAGE_KEYS)}.{hint}')
    epochs = stage['epochs']
    if not isinstance(epochs, (int, float)) or int(epochs) != epochs \
            or epochs < 1:
        raise UserInputError(f'{where} ("{name}"): epochs must be a '
                             f'positive integer, got {epochs}')
    if not isinstance(stage.get('validate', True), bool):
        raise UserInputError(f'{where} ("{name}"): validate must be True or '
                             f'False, got {stage["validate"]!r}')
    cache_cfg = stage.get('feature_cache')
    if cache_cfg is None:
        return
    if not isinstance(cache_cfg, dict):
        raise UserInputError(f'{where}.feature_cache: stage "{name}": '
                             f'must be a dict, got {cache_cfg!r}')
    try:
        check_cache_cfg(name, dict(cache_cfg))
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
        raise UserInputError(f'{where}.feature_cache: {msg}') from e


def parse_stages(stages: Sequence[dict]) -> List[StageSpec]:
    """Validate a stage plan and add absolute ``begin``/``end`` epochs.

    Every stage is checked: its keys (:data:`STAGE_KEYS`), ``epochs``,
    ``validate``, a unique name and its ``feature_cache`` settings
    (:func:`~mmvireid.datasets.feature_cache.check_cache_cfg`).

    Args:
        stages: e.g. ``[dict(name='prompt', epochs=60, validate=False),
            dict(name='finetune', epochs=120)]``; parsed stages
            (:class:`StageSpec`) are accepted too.

    Returns:
        list[StageSpec]: the same stages with ``begin``/``end`` filled in.

    Raises:
        UserInputError: Naming the stage (``train_cfg.stages[i]``) and the
            key at fault.
    """
    if not stages:
        raise UserInputError('train_cfg.stages must list at least one stage, '
                             "e.g. [dict(name='finetune', epochs=10)]")
    parsed, begin, seen = [], 0, set()
    for i, stage in enumerate(stages):
        if isinstance(stage, StageSpec):
            # begin/end are derived: recomputed below
            stage = {
                k: v
                for k, v in stage.items() if k not in ('begin', 'end')
            }
        _check_stage(i, stage)
        if stage['name'] in seen:
            raise UserInputError(f'train_cfg.stages: duplicate stage name '
                                 f'"{stage["name"]}"')
        seen.add(stage['name'])
        spec = StageSpec(copy.deepcopy(stage))
        spec.setdefault('validate', True)
        spec['epochs'] = int(stage['epochs'])
        spec['begin'], spec['end'] = begin, begin + spec['epochs']
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
        if max_iters_per_epoch is not None and (int(max_iters_per_epoch)
                                                != max_iters_per_epoch
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
        self._check_plan_against_model(runner)
        if shift_param_schedulers:
            self._shift_param_schedulers(runner)

    def _check_plan_against_model(self, runner) -> None:
        """Before the first epoch: every stage is one the model has, and
        ``model.num_classes`` is the train set's number of identities."""
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        supported = getattr(model, 'STAGES', None)
        for i, stage in enumerate(self.stages):
            if supported is not None and stage.name not in supported:
                raise UserInputError(
                    f'train_cfg.stages[{i}] names stage "{stage.name}" but '
                    f'{type(model).__name__} has the stages '
                    f'{list(supported)}')
        check_num_classes(
            getattr(model, 'num_classes', None), self.dataloader.dataset)

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
