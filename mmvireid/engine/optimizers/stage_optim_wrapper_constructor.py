# Copyright (c) mmvireid contributors. All rights reserved.
"""One optimizer wrapper per training stage."""
import copy
import inspect
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmvireid.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS

__all__ = ['StageOptimWrapperConstructor', 'select_modules', 'resolve_fused']

#: Optimizers whose torch implementation has a fused (single-kernel) step
#: chosen automatically (``fused='auto'``).
FUSED_AUTO_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


def _fused_devices() -> List[str]:
    """Device types with torch's fused optimizer kernels."""
    try:
        from torch.utils._foreach_utils import \
            _get_fused_kernels_supported_devices
        return list(_get_fused_kernels_supported_devices())
    except ImportError:  # pragma: no cover - older / newer torch
        return ['cuda', 'xpu', 'mps', 'hpu', 'cpu']


def _optimizer_class(optimizer_cfg: dict):
    """The optimizer class a config names, or None (left to mmengine's
    builder to report)."""
    opt_type = optimizer_cfg.get('type')
    if inspect.isclass(opt_type):
        return opt_type
    return OPTIMIZERS.get(opt_type) if isinstance(opt_type, str) else None


def resolve_fused(optimizer_cfg: dict, params: List[torch.Tensor],
                  stage: str, default: Optional[str] = 'auto') -> dict:
    """Settle the ``fused`` key of one stage's optimizer config.

    Args:
        optimizer_cfg (dict): ``optim_wrapper.<stage>.optimizer`` (not
            modified).
        params (list[Tensor]): The parameters that stage optimises.
        stage (str): Stage name, for error messages.
        default (str, optional): The policy when the config has no
            ``fused``: ``'auto'`` or None (leave torch's default).

    Returns:
        dict: The config to build the optimizer from. ``fused`` is

        * an explicit ``True`` / ``False`` / ``None``: kept (``True`` is
          checked: the optimizer must have a fused implementation, every
          parameter must be a floating-point tensor on a device with fused
          kernels, and ``foreach=True`` must not be set with it);
        * ``'auto'`` (given, or absent with ``default='auto'``): ``True``
          for Adam / AdamW / SGD when every parameter is on a CUDA device
          and ``foreach`` is not set; otherwise removed (torch's default:
          ``foreach`` on CUDA, the per-tensor loop on the CPU).

    Raises:
        ValueError: ``fused=True`` where torch has no fused step, or an
            unknown ``fused`` value.
    """
    cfg = dict(optimizer_cfg)
    fused = cfg.get('fused', default)
    if fused not in (True, False, None, 'auto'):
        raise ValueError(f'optim_wrapper["{stage}"].optimizer.fused must be '
                         f"True, False, None or 'auto', got {fused!r}")
    cls = _optimizer_class(cfg)
    if fused == 'auto':
        cfg.pop('fused', None)
        on_cuda = bool(params) and all(
            p.is_cuda and p.is_floating_point() for p in params)
        if on_cuda and cls is not None and \
                issubclass(cls, FUSED_AUTO_OPTIMIZERS) and \
                not cfg.get('foreach') and not cfg.get('differentiable'):
            cfg['fused'] = True
        return cfg
    if fused is True:
        where = f'optim_wrapper["{stage}"].optimizer: fused=True'
        if cls is not None and \
                'fused' not in inspect.signature(cls.__init__).parameters:
            raise ValueError(f'{where}, but {cls.__name__} has no fused '
                             'implementation in torch; remove "fused"')
        if cfg.get('foreach'):
            raise ValueError(f'{where} and foreach=True exclude each other; '
                             'set one of them')
        supported = _fused_devices()
        bad = sorted({
            f'{p.device.type}/{p.dtype}'
            for p in params
            if p.device.type not in supported or not p.is_floating_point()
        })
        if bad:
            raise ValueError(
                f'{where} needs floating-point parameters on a device with '
                f'fused kernels ({supported}); this stage has parameters '
                f'on {bad}. Move the model first, or set fused=False')
    return cfg


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

    **Fused optimizers.** torch's fused Adam / AdamW / SGD update every
    parameter of a stage in a few kernels instead of one per tensor and
    operation, and take the AMP loss scaler's inf check on the device (no
    ``found_inf.item()`` sync per step). The constructor's default,
    :attr:`fused_default` ``= 'auto'``, turns it on for a stage whose
    parameters are all on a CUDA device, unless the stage's optimizer
    config says otherwise:

    * ``optimizer=dict(..., fused=False)`` (or ``foreach=True``): torch's
      unfused step, e.g. for a reference-style benchmark;
    * ``fused=True``: always fused; refused with a clear error for an
      optimizer without a fused step or parameters on a device without
      fused kernels (checked here, not at the first step);
    * ``fused=None``: torch's default; ``fused='auto'``: the policy above.

    On the CPU ``'auto'`` leaves the optimizer unfused: torch 2.x has fused
    CPU kernels, but they round differently from the default loop (last
    bit), so CPU runs and tests keep the reference numbers; pass
    ``fused=True`` to use them. On CUDA the fused step is the same maths,
    rounded differently in the last bits from the ``foreach`` one. The
    parameters must already be on their device when the optimizers are
    built, as mmengine's runner does (it moves the model first).
    """

    #: ``fused`` policy for stages whose optimizer config has none:
    #: ``'auto'`` (fused on CUDA) or None (torch's default).
    fused_default: Optional[str] = 'auto'

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
            if isinstance(cfg.get('optimizer'), dict):
                cfg['optimizer'] = resolve_fused(
                    cfg['optimizer'], list(view.parameters()), stage,
                    self.fused_default)
            wrappers[stage] = DefaultOptimWrapperConstructor(
                cfg, paramwise)(view)
        return OptimWrapperDict(**wrappers)
