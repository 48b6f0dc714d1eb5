# Copyright (c) mmvireid contributors. All rights reserved.
import pytest

from mmvireid.engine.runner import parse_stages
from mmvireid.engine.runner.multi_stage_loop import MultiStageTrainLoop


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
])
def test_parse_stages_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        parse_stages(bad)


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


def test_stage_scheduler_out_of_range():
    stages = [dict(name='prompt', epochs=4)]
    with pytest.raises(ValueError, match='relative to stage "prompt"'):
        _shift(dict(prompt=[dict(type='LinearLR', begin=0, end=5)]), stages)


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
