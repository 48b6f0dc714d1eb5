# Copyright (c) mmvireid contributors. All rights reserved.
import os.path as osp

import pytest
import torch
from toy_utils import REPO_ROOT, toy_config

from mmvireid.engine.runner import parse_stages
from mmvireid.engine.runner.multi_stage_loop import MultiStageTrainLoop
from mmvireid.utils.errors import UserInputError
from mmvireid.utils.preflight import preflight_training


def test_parse_stages_offsets():
    stages = parse_stages([
        dict(name='prompt', epochs=3, validate=False),
        dict(name='fusion', epochs=2, validate=False),
        dict(name='finetune', epochs=5),
    ])
    assert [(s.name, s.begin, s.end) for s in stages] == [
        ('prompt', 0, 3), ('fusion', 3, 5), ('finetune', 5, 10)
    ]
    assert stages[2]['validate'] is True


@pytest.mark.parametrize('bad,msg', [
    ([], 'at least one stage'),
    ([dict(name='a')], 'must be a dict with "name" and "epochs"'),
    ([dict(name='a', epochs=0)], 'positive integer'),
    ([dict(name='a', epochs=1), dict(name='a', epochs=1)], 'duplicate'),
    ([dict(name='a', epochs=1, validate='no')],
     r'train_cfg.stages\[0\] \("a"\): validate must be True or False'),
    ([dict(name='a', epochs=1), dict(name='b', epochs=1, feature_cahce={})],
     r'train_cfg.stages\[1\] \("b"\): unknown key "feature_cahce"; a stage '
     r"has \['name', 'epochs', 'validate', 'feature_cache'\]. Did you mean "
     r'"feature_cache"\?'),
    ([dict(name='a', epochs=1, feature_cache=[64])],
     r'train_cfg.stages\[0\].feature_cache: stage "a": must be a dict'),
])
def test_parse_stages_errors(bad, msg):
    with pytest.raises(UserInputError, match=msg):
        parse_stages(bad)


def test_every_stage_feature_cache_is_checked_when_parsed():
    plan = [
        dict(
            name='prompt',
            epochs=60,
            validate=False,
            feature_cache=dict(mode='paired', batch_size=32)),
        dict(
            name='fusion',
            epochs=40,
            validate=False,
            feature_cache=dict(mode='sampled', batch_size=64)),
        dict(
            name='finetune',
            epochs=120,
            feature_cache=dict(mode='sampled', batch_sise=64)),
    ]
    with pytest.raises(
            UserInputError,
            match=r'^train_cfg.stages\[2\].feature_cache: stage "finetune": '
            r"unknown feature_cache keys \['batch_sise'\]"):
        parse_stages(plan)
    # the tools' preflight goes through the same parser, before anything
    # is written
    from mmengine.config import Config
    cfg = Config(
        dict(work_dir='/tmp', model=dict(), train_cfg=dict(stages=plan)))
    with pytest.raises(UserInputError, match=r'stages\[2\].feature_cache'):
        preflight_training(cfg)
    # parsed stages parse again unchanged (the loop re-parses its own)
    plan[2]['feature_cache'] = dict(mode='sampled', batch_size=64)
    parsed = parse_stages(plan)
    assert parse_stages(parsed) == parsed


def test_a_typo_in_the_last_stage_fails_at_loop_construction(
        toy_sysu_root, tmp_path):
    from mmengine.runner import Runner

    from mmvireid.utils import register_all_modules
    register_all_modules()
    cfg = toy_config(toy_sysu_root, str(tmp_path))
    cfg.train_cfg.stages[-1]['feature_cache'] = dict(mode='pairs')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            UserInputError,
            match=r'train_cfg.stages\[1\].feature_cache: stage "finetune": '
            r"feature_cache.mode must be one of \('shuffled', 'paired', "
            r"'sampled'\), got 'pairs'"):
        runner.train()
    # refused before the first epoch: no stage entered, nothing saved
    assert runner.model.current_stage is None
    assert not list(tmp_path.glob('*.pth'))


@pytest.mark.parametrize('change,msg', [
    (dict(stage='warmup'),
     r'train_cfg.stages\[1\] names stage "warmup" but CLIPVIReID has the '
     r"stages \['prompt', 'finetune'\]"),
    (dict(num_classes=7),
     r'model.num_classes=7 but train_dataloader.dataset \(SYSUMM01Dataset\) '
     r'has 43 train identities; set model.num_classes=43'),
])
def test_loop_checks_the_plan_against_the_model(toy_sysu_root, tmp_path,
                                                change, msg):
    from mmengine.runner import Runner

    from mmvireid.utils import register_all_modules
    register_all_modules()
    cfg = toy_config(toy_sysu_root, str(tmp_path))
    if 'stage' in change:
        cfg.train_cfg.stages[-1]['name'] = change['stage']
        cfg.optim_wrapper[change['stage']] = cfg.optim_wrapper.finetune
        cfg.param_scheduler[change['stage']] = cfg.param_scheduler.finetune
    else:
        cfg.model.num_classes = change['num_classes']
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UserInputError, match=msg):
        runner.train_loop


class _FakeRunner:

    def __init__(self, param_schedulers):
        self.param_schedulers = param_schedulers


def _shift(schedulers, stages):
    loop = MultiStageTrainLoop.__new__(MultiStageTrainLoop)
    loop.stages = parse_stages(stages)
    runner = _FakeRunner(schedulers)
    loop._shift_param_schedulers(runner)
    return runner.param_schedulers


def test_stage_relative_schedulers_are_shifted():
    stages = [dict(name='prompt', epochs=4), dict(name='finetune', epochs=6)]
    out = _shift(
        dict(
            prompt=[dict(type='LinearLR', begin=0, end=2)],
            finetune=dict(type='MultiStepLR', milestones=[3])), stages)
    assert out['prompt'][0]['begin'] == 0 and out['prompt'][0]['end'] == 2
    # default end = stage length, shifted by the stage start (4)
    assert out['finetune'][0]['begin'] == 4
    assert out['finetune'][0]['end'] == 10


def test_stage_scheduler_past_the_stage():
    # a stage shortened by one key: an end past it is kept (LinearLR's
    # slope depends on it), a scheduler beginning after it is dropped,
    # t_initial=None is the stage length
    stages = [dict(name='prompt', epochs=2), dict(name='finetune', epochs=3)]
    out = _shift(
        dict(
            prompt=[dict(type='TimmCosineLR', t_initial=None)],
            finetune=[
                dict(type='LinearLR', begin=0, end=11),
                dict(type='MultiStepLR', milestones=[40], begin=0, end=120),
                dict(type='ConstantLR', begin=5, end=8)
            ]), stages)
    assert out['prompt'][0]['t_initial'] == 2
    spans = [(s['begin'], s['end']) for s in out['finetune']]
    assert spans == [(2, 13), (2, 122)]
    with pytest.raises(ValueError, match='relative to stage "prompt"'):
        _shift(dict(prompt=[dict(type='LinearLR', begin=3, end=3)]), stages)


def test_one_key_shortens_a_real_recipe(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmvireid.registry import PARAM_SCHEDULERS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/clip_vireid_sysu.py'))
    cfg.merge_from_dict({'train_cfg.stages.1.epochs': 2,
                         'train_cfg.stages.0.epochs': 3})
    out = _shift(cfg.param_scheduler, cfg.train_cfg.stages)
    assert out['prompt'][0]['t_initial'] == 3
    # every scheduler of the shortened plan builds
    param = torch.nn.Parameter(torch.zeros(1))
    with DefaultScope.overwrite_default_scope('mmvireid'):
        for scheds in out.values():
            for sched in scheds:
                PARAM_SCHEDULERS.build(
                    dict(sched, optimizer=torch.optim.Adam([param])))


def test_stage_at_and_validation_plan():
    loop = MultiStageTrainLoop.__new__(MultiStageTrainLoop)
    loop.stages = parse_stages([
        dict(name='prompt', epochs=3, validate=False),
        dict(name='finetune', epochs=5)
    ])
    assert [loop.stage_at(e).name for e in range(8)] == ['prompt'] * 3 + [
        'finetune'
    ] * 5

    class _R:
        val_loop = object()

    loop._runner = _R()
    loop._max_epochs = 8
    loop.val_interval = 2
    validated = [e for e in range(8) if loop._should_validate(e)]
    # every 2nd epoch of the finetune stage (epochs 5, 7 0-based) + its end
    assert validated == [4, 6, 7]


def _resume(plan_now, epoch, plan_saved=None):
    from types import SimpleNamespace

    from mmvireid.engine.hooks import StageSwitchHook
    loop = MultiStageTrainLoop.__new__(MultiStageTrainLoop)
    loop.stages = parse_stages(plan_now)
    meta = dict(epoch=epoch)
    if plan_saved is not None:
        meta['stage_plan'] = plan_saved
    runner = SimpleNamespace(_resume=True, train_loop=loop)
    StageSwitchHook().after_load_checkpoint(runner, dict(meta=meta))


def test_resume_checks_the_stage_plan():
    plan = [dict(name='prompt', epochs=4), dict(name='finetune', epochs=6)]
    # the stage in progress (finetune, 2 of 6 epochs done) may change length
    _resume([plan[0], dict(name='finetune', epochs=3)], 6, plan)
    _resume(plan, 10, plan)  # finished: a warning, nothing to train
    with pytest.raises(UserInputError, match='past the end of this config'):
        _resume([plan[0], dict(name='finetune', epochs=1)], 6, plan)
    # a finished stage of another length, or another order: refused
    with pytest.raises(UserInputError, match=r'was trained with the stage '
                       r'plan \[prompt 4, finetune 6\]'):
        _resume([dict(name='prompt', epochs=3), plan[1]], 6, plan)
    with pytest.raises(UserInputError, match='does not repeat'):
        _resume([plan[1], plan[0]], 6, plan)
