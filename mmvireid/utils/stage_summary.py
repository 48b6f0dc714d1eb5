# Copyright (c) mmvireid contributors. All rights reserved.
"""A per-stage summary of a training config (``tools/misc/print_config.py``).

For every stage of ``train_cfg.stages``: its epochs, what trains (the
``modules`` of the stage's optim wrapper), the optimizer, the learning-rate
schedulers with the learning rate at the first and the last epoch of the
stage, and the feature cache. The learning rates are not recomputed from
formulas: the stage schedulers are shifted to absolute epochs exactly as
:class:`~mmvireid.engine.runner.MultiStageTrainLoop` does
(:func:`~mmvireid.engine.runner.multi_stage_loop.shift_stage_schedulers`),
built on a one-parameter optimizer as the Runner builds them, and stepped
once per epoch as ``ParamSchedulerHook`` steps them during training (every
stage's schedulers, every epoch).
"""
import copy
import warnings
from typing import Dict, List, Optional

import torch
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from mmvireid.registry import PARAM_SCHEDULERS

__all__ = ['stage_summary', 'format_stage_summary', 'stage_lr_curve']


def _plain(value):
    """ConfigDict / tuples -> plain dicts / lists, for printing."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _stage_optim_cfg(optim_wrapper, stage: str) -> Optional[dict]:
    """The optim wrapper config that trains ``stage`` (the stage's entry of
    a ``StageOptimWrapperConstructor`` config, or the single wrapper)."""
    if not isinstance(optim_wrapper, (dict, ConfigDict)):
        return None
    if optim_wrapper.get('constructor') == 'StageOptimWrapperConstructor':
        return optim_wrapper.get(stage)
    return optim_wrapper


def _stage_schedulers(param_scheduler, stage: str) -> List[dict]:
    """The scheduler configs that set ``stage``'s learning rates."""
    if param_scheduler is None:
        return []
    if isinstance(param_scheduler, (dict, ConfigDict)) and \
            'type' not in param_scheduler:
        scheds = param_scheduler.get(stage) or []
    else:
        scheds = param_scheduler
    if isinstance(scheds, (dict, ConfigDict)):
        scheds = [scheds]
    return [s for s in scheds if isinstance(s, (dict, ConfigDict))]


def stage_lr_curve(cfg, stage: str, lr: float, stages) -> Dict[int, float]:
    """Learning rate of ``stage``'s optimizer at each epoch of the stage.

    Args:
        cfg (Config): The config (``param_scheduler`` is read).
        stage (str): The stage name.
        lr (float): The base learning rate of the stage's optimizer.
        stages (list[StageSpec]): The parsed stage plan
            (:func:`~mmvireid.engine.runner.multi_stage_loop.parse_stages`).

    Returns:
        dict[int, float]: ``{absolute 0-based epoch: lr}`` for the epochs of
        the stage (the rate of its first iteration; an iteration-based
        scheduler may change it within the epoch).
    """
    # the engine imports mmvireid.utils at module level: importing it at
    # the top of this module would be a cycle
    from mmvireid.engine.runner import shift_stage_schedulers
    spec = next(s for s in stages if s.name == stage)
    param_scheduler = cfg.get('param_scheduler')
    if isinstance(param_scheduler, (dict, ConfigDict)) and \
            'type' not in param_scheduler:
        shifted = shift_stage_schedulers(
            copy.deepcopy(_plain(param_scheduler)), stages)
        scheds = shifted.get(stage) or []
    else:
        scheds = copy.deepcopy(_plain(param_scheduler)) or []
    if isinstance(scheds, dict):
        scheds = [scheds]
    param = torch.nn.Parameter(torch.zeros(1))
    optim_wrapper = OptimWrapper(torch.optim.SGD([param], lr=lr))
    built = []
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmvireid')), \
            warnings.catch_warnings():
        # "scheduler.step() before optimizer.step()": nothing is optimised
        warnings.simplefilter('ignore', UserWarning)
        for sched in scheds:
            sched = dict(sched)
            # the Runner's default end: the end of training
            sched.setdefault('end', stages[-1].end)
            # one "iteration" per epoch: an epoch-based scheduler converted
            # to iterations gives the same rate at every epoch start
            built.append(
                PARAM_SCHEDULERS.build(
                    sched,
                    default_args=dict(optimizer=optim_wrapper,
                                      epoch_length=1)))
        curve = {}
        for epoch in range(spec.end):
            if epoch >= spec.begin:
                curve[epoch] = optim_wrapper.param_groups[0]['lr']
            for sched in built:  # ParamSchedulerHook.after_train_epoch
                sched.step()
    return curve


def _describe_cache(cache) -> str:
    if not cache:
        return 'none (images through train_dataloader)'
    cache = _plain(cache)
    parts = [
        f"mode={cache.get('mode', 'shuffled')}",
        f"batch_size={cache.get('batch_size', 64)}"
    ]
    for key in ('extract_batch_size', 'drop_last', 'modalities',
                'num_workers'):
        if key in cache:
            parts.append(f'{key}={cache[key]}')
    parts.append('pipeline=' +
                 ('given' if cache.
                  get('pipeline') else 'val_dataloader.dataset.pipeline'))
    return 'image features cached at the stage start (' + ', '.join(
        parts) + ')'


def _describe_optimizer(optim_cfg) -> str:
    if optim_cfg is None:
        return '?'
    opt = _plain(optim_cfg.get('optimizer') or {})
    text = str(opt.get('type', '?'))
    args = ', '.join(f'{k}={v}' for k, v in opt.items() if k != 'type')
    text += f'({args})' if args else ''
    wrapper = optim_cfg.get('type', 'OptimWrapper')
    if wrapper != 'OptimWrapper':
        text += f' in {wrapper}'
    for key in ('clip_grad', 'accumulative_counts'):
        if optim_cfg.get(key) is not None:
            text += f', {key}={_plain(optim_cfg.get(key))}'
    custom = (optim_cfg.get('paramwise_cfg') or {}).get('custom_keys')
    if custom:
        text += '; custom_keys ' + ', '.join(f'{k}: {_plain(v)}'
                                             for k, v in custom.items())
    return text


def _describe_scheduler(sched: dict) -> str:
    sched = _plain(sched)
    args = ', '.join(f'{k}={v}' for k, v in sched.items() if k != 'type')
    return f"{sched.get('type', '?')}({args})"


def stage_summary(cfg) -> List[dict]:
    """One record per stage of ``cfg.train_cfg.stages``.

    Returns:
        list[dict]: ``name``, ``epochs``, ``begin``, ``end`` (absolute,
        1-based first and last epoch), ``validate``, ``modules``,
        ``optimizer``, ``lr`` (the optimizer's base rate), ``schedulers``,
        ``lr_first``, ``lr_last``, ``lr_peak`` (the rates at the stage's
        first and last epoch and its largest; None without a base rate)
        and ``feature_cache``.

    Raises:
        ValueError: The config has no ``train_cfg.stages`` (the message
            names the key), or a stage plan / scheduler fails the checks
            of :class:`MultiStageTrainLoop`.
    """
    # not at the top: a cycle (see stage_lr_curve)
    from mmvireid.engine.runner import parse_stages
    train_cfg = cfg.get('train_cfg') or {}
    if not train_cfg.get('stages'):
        raise ValueError('train_cfg.stages: the config has no stage plan '
                         '(MultiStageTrainLoop); nothing to summarise.')
    stages = parse_stages(_plain(train_cfg['stages']))
    optim_wrapper = cfg.get('optim_wrapper')
    rows = []
    for spec in stages:
        optim_cfg = _stage_optim_cfg(optim_wrapper, spec.name)
        if optim_cfg is None:
            raise ValueError(
                f'optim_wrapper.{spec.name}: no optim wrapper for stage '
                f'"{spec.name}" (StageOptimWrapperConstructor needs one '
                'per stage).')
        modules = optim_cfg.get('modules')
        lr = (optim_cfg.get('optimizer') or {}).get('lr')
        curve = stage_lr_curve(cfg, spec.name, lr, stages) \
            if lr is not None else {}
        rows.append(
            dict(
                name=spec.name,
                epochs=spec['epochs'],
                begin=spec.begin + 1,
                end=spec.end,
                validate=spec['validate'],
                modules=list(modules) if modules else None,
                optimizer=_describe_optimizer(optim_cfg),
                lr=lr,
                schedulers=[
                    _describe_scheduler(s) for s in _stage_schedulers(
                        cfg.get('param_scheduler'), spec.name)
                ],
                lr_first=curve.get(spec.begin),
                lr_last=curve.get(spec.end - 1),
                lr_peak=max(curve.values()) if curve else None,
                feature_cache=_describe_cache(spec.get('feature_cache'))))
    return rows


def format_stage_summary(rows: List[dict]) -> str:
    """The text :func:`stage_summary` records print as."""
    total = rows[-1]['end'] if rows else 0
    lines = [f'Stage plan: {len(rows)} stage(s), {total} epochs']

    def lr_text(value):
        return '?' if value is None else f'{value:.4g}'

    for i, row in enumerate(rows, start=1):
        trains = ', '.join(row['modules']) if row['modules'] else \
            'all parameters'
        lines += [
            f'[{i}] {row["name"]}: epochs {row["begin"]}-{row["end"]} '
            f'({row["epochs"]} epochs), '
            f'validate={row["validate"]}',
            f'    trains: {trains}',
            f'    optimizer: {row["optimizer"]}',
            '    lr schedule: ' + ('; '.join(row['schedulers'])
                                   if row['schedulers'] else 'constant'),
            f'    lr: {lr_text(row["lr_first"])} at epoch {row["begin"]} '
            f'(first), {lr_text(row["lr_last"])} at epoch {row["end"]} '
            f'(last), peak {lr_text(row["lr_peak"])}',
            f'    feature cache: {row["feature_cache"]}',
        ]
    return '\n'.join(lines)
