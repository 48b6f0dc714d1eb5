# Copyright (c) mmvireid contributors. All rights reserved.
"""One optimizer wrapper per training stage."""
import copy
from typing import Dict, List

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmvireid.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['StageOptimWrapperConstructor', 'select_modules']


class _ModuleView(nn.Module):
    """Holds references to chosen submodules under their original names.

    Parameter names seen by the wrapped constructor (and so by
    ``paramwise_cfg.custom_keys``) are the same as in the full model, e.g.
    ``head.classifier.weight``.
    """


def select_modules(model: nn.Module, module_names: List[str],
                   stage: str) -> nn.Module:
    """Build a module view of ``model`` holding only ``module_names``.

    Args:
        model: The (unwrapped) model.
        module_names: Dotted names of submodules, e.g.
            ``['prompt_learner', 'image_encoder.attnpool']``.
        stage: Stage name, for error messages.
    """
    if isinstance(module_names, str):
        module_names = [module_names]
    view = _ModuleView()
    available = [n for n, _ in model.named_children()]
    for name in module_names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(
                f'optim_wrapper["{stage}"].modules: the model has no '
                f'submodule "{name}"; top-level submodules are {available}'
            ) from None
        parent = view
        parts = name.split('.')
        for part in parts[:-1]:
            if not hasattr(parent, part):
                parent.add_module(part, _ModuleView())
            parent = getattr(parent, part)
        parent.add_module(parts[-1], module)
    return view


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StageOptimWrapperConstructor:
    """Build an :class:`OptimWrapperDict` with one wrapper per stage.

    Each key of the config is a stage name; its value is an ordinary optim
    wrapper config plus ``modules``, the submodules whose parameters that
    stage trains (and optionally ``paramwise_cfg``). Parameters of other
    modules are simply not in that stage's optimizer, which is how a stage
    freezes them without touching ``requires_grad`` (DDP never syncs a
    parameter that was frozen when the model was wrapped).

    Example::

        optim_wrapper = dict(
            constructor='StageOptimWrapperConstructor',
            prompt=dict(
                modules=['prompt_learner'],
                optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4)),
            finetune=dict(
                modules=['image_encoder', 'head'],
                optimizer=dict(type='Adam', lr=5e-6, weight_decay=1e-4),
                paramwise_cfg=dict(bias_lr_mult=2.0)))
    """

    def __init__(self, optim_wrapper_cfg: Dict, paramwise_cfg=None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError('optim_wrapper_cfg should be a dict, '
                            f'but got {type(optim_wrapper_cfg)}')
        if paramwise_cfg is not None:
            raise ValueError(
                'StageOptimWrapperConstructor: put paramwise_cfg inside each '
                'stage config, e.g. optim_wrapper.finetune.paramwise_cfg')
        if not optim_wrapper_cfg:
            raise ValueError('StageOptimWrapperConstructor needs one optim '
                             'wrapper config per stage, got none')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        wrappers = {}
        for stage, cfg in self.optim_wrapper_cfg.items():
            cfg = copy.deepcopy(cfg)
            if 'modules' not in cfg:
                raise ValueError(
                    f'optim_wrapper["{stage}"] needs "modules": the '
                    'submodules this stage trains, e.g. '
                    "modules=['prompt_learner']")
            view = select_modules(model, cfg.pop('modules'), stage)
            if not any(p.requires_grad for p in view.parameters()):
                raise ValueError(
                    f'optim_wrapper["{stage}"]: the modules {list(dict(view.named_children()))} '
                    'have no trainable parameter')
            paramwise = cfg.pop('paramwise_cfg', None)
            cfg.setdefault('type', 'OptimWrapper')
            wrappers[stage] = DefaultOptimWrapperConstructor(
                cfg, paramwise)(view)
        return OptimWrapperDict(**wrappers)
