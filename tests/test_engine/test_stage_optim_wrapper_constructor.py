# Copyright (c) mmvireid contributors. All rights reserved.
import pytest
import torch.nn as nn
from mmengine.optim import OptimWrapperDict

from mmvireid.engine.optimizers import StageOptimWrapperConstructor


class _Model(nn.Module):

    def __init__(self):
        super().__init__()
        self.prompt_learner = nn.Linear(2, 2)
        self.image_encoder = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3))
        self.head = nn.Linear(3, 4)


def test_one_wrapper_per_stage_with_its_modules():
    model = _Model()
    ow = StageOptimWrapperConstructor(
        dict(
            prompt=dict(
                modules=['prompt_learner'],
                optimizer=dict(type='Adam', lr=0.1)),
            finetune=dict(
                modules=['image_encoder.1', 'head'],
                optimizer=dict(type='SGD', lr=0.01),
                paramwise_cfg=dict(bias_lr_mult=2.0))))(model)
    assert isinstance(ow, OptimWrapperDict)
    prompt_params = {
        id(p)
        for g in ow['prompt'].optimizer.param_groups for p in g['params']
    }
    assert prompt_params == {id(p) for p in model.prompt_learner.parameters()}
    groups = ow['finetune'].optimizer.param_groups
    ft_params = {id(p) for g in groups for p in g['params']}
    expected = list(model.image_encoder[1].parameters()) + list(
        model.head.parameters())
    assert ft_params == {id(p) for p in expected}
    # bias_lr_mult applies, with names as in the full model
    lrs = sorted({g['lr'] for g in groups})
    assert lrs == [0.01, 0.02]


def test_unknown_module_names_the_available_ones():
    with pytest.raises(ValueError, match="no submodule \"backbone\".*'head'"):
        StageOptimWrapperConstructor(
            dict(prompt=dict(
                modules=['backbone'],
                optimizer=dict(type='Adam', lr=0.1))))(_Model())


def test_missing_modules_key():
    with pytest.raises(ValueError, match='needs "modules"'):
        StageOptimWrapperConstructor(
            dict(prompt=dict(optimizer=dict(type='Adam', lr=0.1))))(_Model())
