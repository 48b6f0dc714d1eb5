# Copyright (c) mmvireid contributors. All rights reserved.
"""Small helpers shared by ``tools/train.py`` and ``tools/test.py``."""
import logging
import os.path as osp
import re
import sys
from typing import Callable, Optional, Sequence

from mmengine.config import ConfigDict
from mmengine.logging import print_log

__all__ = [
    'preflight_datasets', 'preflight_config', 'check_cfg_options', 'apply_amp',
    'AMP_CHOICES', 'stage_optim_wrapper_cfgs',
    'check_resume_checkpoint', 'check_auto_resume',
    'disable_persistent_workers', 'setup_cpu_distributed', 'explain_error',
    'run_or_explain', 'UserInputError', 'closest_names', 'check_writable',
    'preflight_training', 'rehearsal_config', 'check_resume_compatible'
]


class UserInputError(ValueError):
    """An error in the user's input (paths, config values) rather than a bug.

    The tools print its message alone, without a traceback.
    """


def stage_optim_wrapper_cfgs(optim_wrapper) -> list:
    """The optim wrapper config of every stage of ``optim_wrapper``: the
    per-stage entries of a ``StageOptimWrapperConstructor`` config, or the
    config itself (the dicts themselves, to edit in place)."""
    if optim_wrapper.get('constructor') == 'StageOptimWrapperConstructor':
        return [v for k, v in optim_wrapper.items() if k != 'constructor']
    return [optim_wrapper]


#: ``--amp`` choices of the tools
AMP_CHOICES = ('auto', 'bf16', 'fp16')


def apply_amp(cfg, dtype: str = 'auto') -> str:
    """Train (and evaluate) ``cfg`` with automatic mixed precision.

    Every optim wrapper (a single one, or the per-stage wrappers of
    ``StageOptimWrapperConstructor``) becomes an ``AmpOptimWrapper`` with the
    autocast ``dtype``; ``bf16`` has fp32's exponent range and trains without
    loss scaling (no ``GradScaler`` and its per-step host sync), ``fp16``
    scales the loss dynamically. Validation and testing extract features
    under autocast too (mmengine's ``val_cfg.fp16`` / ``test_cfg.fp16``).
    Losses that need fp32 (the SupCon logits of the prompt stages, the
    distance matrices of the triplet losses) cast their inputs themselves.

    Args:
        cfg (Config): The config, changed in place.
        dtype (str): ``'bf16'``, ``'fp16'`` or ``'auto'`` (bf16 where the GPU
            supports it, e.g. A100/H100; fp16 otherwise).

    Returns:
        str: The dtype used, ``'bf16'`` or ``'fp16'``.
    """
    import torch
    if dtype not in AMP_CHOICES:
        raise UserInputError(f'--amp {dtype!r}: choose one of {AMP_CHOICES}')
    if not torch.cuda.is_available():
        raise UserInputError(
            '--amp needs a CUDA device (mmengine AmpOptimWrapper asserts '
            'CUDA); none is available.')
    if dtype == 'auto':
        dtype = 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    for stage_cfg in stage_optim_wrapper_cfgs(cfg.optim_wrapper):
        if stage_cfg.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current')
            continue
        stage_cfg['type'] = 'AmpOptimWrapper'
        stage_cfg['dtype'] = dict(bf16='bfloat16', fp16='float16')[dtype]
        stage_cfg.setdefault(
            'loss_scale', dict(enabled=False) if dtype == 'bf16' else
            'dynamic')
    for key in ('val_cfg', 'test_cfg'):
        loop = cfg.get(key)
        if isinstance(loop, (dict, ConfigDict)):
            # mmengine's loops autocast to the device default (fp16), which
            # is exact enough for L2-normalised retrieval features
            loop['fp16'] = True
    return dtype


LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _dataset_configs(cfg, loaders=LOADERS):
    """``(where, dataset config)`` of the given loaders, each distinct
    config once (test_dataloader often repeats val_dataloader)."""
    seen = []
    for name in loaders:
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        dataset = loader.get('dataset')
        if not isinstance(dataset, (dict, ConfigDict)) or dataset in seen:
            continue
        seen.append(dataset)
        yield f'{name}.dataset', dataset


def preflight_datasets(cfg,
                       check_files: bool = True,
                       loaders: Sequence[str] = LOADERS) -> None:
    """Fail within seconds on a missing or broken dataset.

    Building a Runner first builds the model (seconds to minutes for real
    CLIP backbones), and a missing image would only surface when a
    dataloader reaches it, possibly hours later. Instead every train/val/test
    dataset that has a ``data_root`` is built right away without pipeline
    (listing files only, no image is decoded):

    * a missing ``data_root`` or split file raises the dataset's own error,
      which names the path and shows the expected layout;
    * malformed split/index/description files raise the dataset's message,
      prefixed with the config key of the dataset;
    * with ``check_files``, every listed image must exist: otherwise the
      error counts the missing ones and names the first few (index files
      that reference images which are not on disk);
    * the train sampler is built once on the train set (e.g.
      ``CrossModalIdentitySampler`` names identities with images in only
      one modality).

    Args:
        cfg (Config): The merged config.
        check_files (bool): Check that every listed image exists.
            Defaults to True.
        loaders (Sequence[str]): The loaders whose datasets are checked
            (``tools/test.py`` needs only ``('test_dataloader', )``).
            Defaults to the train, val and test loaders.

    Raises:
        UserInputError: With a message naming the dataset and the file at
            fault.
    """
    import copy

    from mmvireid.registry import DATASETS
    for where, dataset_cfg in _dataset_configs(cfg, loaders):
        root = dataset_cfg.get('data_root')
        if root is None:
            continue  # e.g. a dataset wrapper: built by the Runner as is
        dataset_cfg = copy.deepcopy(dataset_cfg)
        dataset_cfg['pipeline'] = []
        name = dataset_cfg.get('type', 'dataset')
        try:
            dataset = DATASETS.build(dataset_cfg)
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        except (FileNotFoundError, ValueError, KeyError) as e:
            msg = e.args[0] if e.args and isinstance(e.args[0], str) \
                else str(e)
            raise UserInputError(f'{where} ({name}): {msg}') from e
        if check_files:
            _check_listed_files(where, name, root, dataset)
        if where == 'train_dataloader.dataset':
            _check_train_sampler(cfg, where, name, dataset)
            _check_num_classes(cfg, where, name, dataset)


def _check_listed_files(where: str, name: str, root: str, dataset) -> None:
    """Raise if images listed by ``dataset`` are not on disk."""
    paths = []
    for idx in range(len(dataset)):
        path = dataset.get_data_info(idx).get('img_path')
        if path is not None:
            paths.append(path)
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        shown = '\n'.join(f'  {p}' for p in missing[:5])
        more = '' if len(missing) <= 5 else \
            f'\n  ... and {len(missing) - 5} more'
        raise UserInputError(
            f'{where} ({name}, data_root "{root}"): {len(missing)} of '
            f'{len(paths)} images listed by its split/index files do not '
            f'exist:\n{shown}{more}\nCheck that the dataset was extracted '
            'completely and that the split files belong to this copy.')


def _check_num_classes(cfg, where: str, name: str, dataset) -> None:
    """``model.num_classes`` must be the train set's number of identities
    (checked again by StageSwitchHook; here before the model is built,
    which for RN50 configs means before the CLIP download)."""
    model = cfg.get('model') or {}
    expected = model.get('num_classes') if hasattr(model, 'get') else None
    found = getattr(dataset, 'metainfo', {}).get('num_classes')
    if expected is not None and found is not None and expected != found:
        raise UserInputError(
            f'model.num_classes={expected} but {where} ({name}) has {found} '
            f'train identities; set model.num_classes={found} in the config '
            f'(or --cfg-options model.num_classes={found}).')


def _check_train_sampler(cfg, where: str, name: str, dataset) -> None:
    """Build the train sampler once: e.g. CrossModalIdentitySampler refuses
    identities with images in one modality only, naming their labels."""
    import copy

    from mmvireid.registry import DATA_SAMPLERS
    sampler_cfg = cfg.train_dataloader.get('sampler')
    if not isinstance(sampler_cfg, (dict, ConfigDict)):
        return
    sampler_cfg = copy.deepcopy(sampler_cfg)
    # the Runner passes these two; world size is 1 before torch.distributed
    # starts, so per-rank limits are checked again when training starts
    default_args = dict(dataset=dataset, seed=0)
    try:
        sampler = DATA_SAMPLERS.build(sampler_cfg, default_args=default_args)
    except (ValueError, KeyError) as e:
        msg = e.args[0] if e.args and isinstance(e.args[0], str) \
            else str(e)
        raise UserInputError(
            f'train_dataloader.sampler ({sampler_cfg.get("type")}) on '
            f'{where} ({name}): {msg}') from e
    num_ids = getattr(sampler, 'num_ids', None)
    num_instances = getattr(sampler, 'num_instances', None)
    batch_size = cfg.train_dataloader.get('batch_size')
    if num_ids is not None and num_instances is not None and \
            batch_size is not None:
        step = 2 * num_ids * num_instances
        if batch_size != step:
            # a batch must be one sampler step: its visible and infrared
            # halves are aligned by position (CSDN, MSEL, the caches)
            raise UserInputError(
                f'train_dataloader.batch_size={batch_size}, but the '
                f'{type(sampler).__name__} step is 2 x num_ids x '
                f'num_instances = 2 x {num_ids} x {num_instances} = {step} '
                'images (P identities x K images, visible then infrared, '
                f'aligned by position). Set batch_size={step}, or change '
                'num_ids / num_instances.')


def _registries():
    """Every registry a config ``type`` may be looked up in: mmvireid's and
    MMEngine's roots (which reach mmcv and other scopes)."""
    import mmengine.registry as root
    from mmengine.registry import Registry

    import mmvireid.registry as ours
    found = []
    for module in (ours, root):
        for value in vars(module).values():
            if isinstance(value, Registry) and value not in found:
                found.append(value)
    return found


def _registered_names(registry, with_scopes: bool = False):
    """Names ``registry`` resolves: its own, its ancestors', and with
    ``with_scopes`` the ``scope.Name`` of every registry under its root."""
    names = set()
    node = registry
    while node is not None:
        names.update(node.module_dict)
        root, node = node, node.parent
    if with_scopes:
        stack = list(root.children.values())
        while stack:
            child = stack.pop()
            names.update(f'{child.scope}.{n}' for n in child.module_dict)
            stack.extend(child.children.values())
    return names


def closest_names(name: str, candidates, n: int = 3):
    """Up to ``n`` of ``candidates`` closest to ``name``, for "did you mean"
    hints: a case-insensitive equal name first, then the names within 0.1
    of the best similarity (at least 0.6). A scoped name (``scope.Name``)
    is compared with the names of the same scope, without the scope."""
    import difflib
    scope, _, bare = name.rpartition('.')
    pool = {}
    for cand in set(candidates):
        cand_scope, _, cand_bare = cand.rpartition('.')
        if cand_scope == scope:
            pool[cand] = cand_bare
    exact = sorted(c for c, b in pool.items() if b.lower() == bare.lower())
    scored = sorted(
        ((difflib.SequenceMatcher(None, bare.lower(), b.lower()).ratio(), c)
         for c, b in pool.items() if c not in exact),
        key=lambda item: (-item[0], item[1]))
    scored = [(r, c) for r, c in scored if r >= 0.6]
    close = [c for r, c in scored if r >= scored[0][0] - 0.1] if scored \
        else []
    return (exact + close)[:n]


def _did_you_mean(names) -> str:
    if not names:
        return ''
    return ' Did you mean ' + ' or '.join(f'"{n}"' for n in names) + '?'


def preflight_config(cfg) -> None:
    """Check every component ``type`` of ``cfg`` before anything is built.

    A misspelt type otherwise fails only when the Runner builds that
    component, after it has created the work directory and its log. Each
    string ``type`` must resolve in one of the registries (mmvireid's, with
    MMEngine's and other scopes reached through them).

    Raises:
        UserInputError: Names the config key of the unknown type and the
            closest registered names.
    """
    registries = _registries()

    def resolves(type_name: str, scope) -> bool:
        key = type_name if scope is None or '.' in type_name \
            else f'{scope}.{type_name}'
        for registry in registries:
            try:
                if registry.get(key) is not None:
                    return True
            except Exception:  # a scope whose package is not installed
                continue
        return False

    def walk(node, where: str):
        if isinstance(node, dict):
            type_name = node.get('type')
            if isinstance(type_name, str) and not resolves(
                    type_name, node.get('_scope_')):
                candidates = set()
                for registry in registries:
                    candidates |= _registered_names(
                        registry, with_scopes='.' in type_name)
                raise UserInputError(
                    f'{where}.type: unknown component type "{type_name}"; '
                    'it is not registered in any mmvireid/MMEngine registry.' +
                    _did_you_mean(closest_names(type_name, candidates)))
            for key, value in node.items():
                walk(value, f'{where}.{key}' if where else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{where}[{i}]')

    walk({k: v for k, v in cfg.items()}, '')


#: Top-level config keys that mmengine's Runner (``Runner.from_cfg``) or
#: these tools read; any other top-level key is a plain variable of the
#: config file.
RUNNER_KEYS = frozenset({
    'auto_scale_lr', 'custom_hooks', 'data_preprocessor', 'default_hooks',
    'default_scope', 'env_cfg', 'experiment_name', 'launcher', 'load_from',
    'log_level', 'log_processor', 'model', 'optim_wrapper', 'param_scheduler',
    'randomness', 'resume', 'test_cfg', 'test_dataloader', 'test_evaluator',
    'train_cfg', 'train_dataloader', 'val_cfg', 'val_dataloader',
    'val_evaluator', 'visualizer', 'work_dir', 'model_wrapper_cfg', 'compile',
    'find_unused_parameters', 'custom_imports', 'runner_type', 'sync_bn',
    'efficient_conv_bn_eval', 'activation_checkpointing'
})


def _keys_holding(cfg, name: str) -> list:
    """Dotted paths of the nested config keys called ``name``."""
    found = []

    def walk(node, where):
        if isinstance(node, (dict, ConfigDict)):
            for key, value in node.items():
                path = f'{where}.{key}' if where else str(key)
                if key == name and where:
                    found.append(path)
                walk(value, path)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{where}.{i}')

    walk({k: v for k, v in cfg.items() if k in RUNNER_KEYS}, '')
    return found


def check_cfg_options(cfg, options) -> None:
    """Refuse a ``--cfg-options`` key that looks like a misspelt config key.

    ``--cfg-options`` may add nested keys (e.g.
    ``model.image_encoder.frozen=True``), so such a key is only refused when
    an existing key at the same place is a close spelling of it
    (``trian_cfg.max_epochs``, ``model.num_clases``). At the top level,
    where nothing but the Runner's keys is read, a new key is refused, and
    so is a plain variable of the config file (``data_root=...``): it was
    substituted when the file was read, so overriding it would change
    nothing.

    Raises:
        UserInputError: Names the key and the existing one it resembles.
    """
    import difflib
    if not options:
        return
    for full_key in options:
        top = str(full_key).split('.')[0]
        if top in cfg and top not in RUNNER_KEYS and '.' not in str(
                full_key) and not isinstance(cfg[top], (dict, ConfigDict)):
            users = _keys_holding(cfg, top)
            hint = (f' Set the keys that use it instead: '
                    f'{", ".join(f"{k}=..." for k in users[:4])}.'
                    if users else '')
            raise UserInputError(
                f'--cfg-options {full_key}: "{top}" is a variable of the '
                'config file, already substituted where the file uses it; '
                'overriding it changes nothing the run reads.' + hint)
        if top not in cfg and top not in RUNNER_KEYS:
            close = difflib.get_close_matches(
                top, [str(k) for k in cfg.keys()], n=1, cutoff=0.85)
            if close:
                raise UserInputError(
                    f'--cfg-options {full_key}: the config has no key '
                    f'"{top}". Did you mean "{close[0]}"?')
            close = difflib.get_close_matches(
                top, [str(k) for k in cfg.keys()] + sorted(RUNNER_KEYS), n=1,
                cutoff=0.6)
            raise UserInputError(
                f'--cfg-options {full_key}: "{top}" is neither a key of the '
                'config nor one the Runner reads, so it would be ignored.' +
                (f' Did you mean "{close[0]}"?' if close else ''))
        node, walked = cfg, []
        for part in str(full_key).split('.'):
            if isinstance(node, (list, tuple)) and part.isdigit():
                index = int(part)
                if index >= len(node):
                    break
                node = node[index]
            elif hasattr(node, 'keys'):  # dict, ConfigDict or Config
                if part not in node:
                    close = difflib.get_close_matches(
                        part, [str(k) for k in node.keys()], n=1, cutoff=0.85)
                    if close:
                        where = '.'.join(walked + [close[0]])
                        raise UserInputError(
                            f'--cfg-options {full_key}: the config has no '
                            f'key "{".".join(walked + [part])}". Did you '
                            f'mean "{where}"?')
                    break
                node = node[part]
            else:
                break
            walked.append(part)


def setup_cpu_distributed(cfg) -> bool:
    """Let ``--launcher pytorch`` run on machines without CUDA (gloo).

    MMEngine 0.10.7's launcher calls ``torch.cuda.set_device(LOCAL_RANK)``
    and its Runner gives DDP ``device_ids=[LOCAL_RANK]``; both fail without
    a GPU. Here, when CUDA is unavailable, the default process group is
    initialised with gloo from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) — the Runner then
    skips its own initialisation — and the DDP wrapper gets
    ``device_ids=None``, the CPU form. Debugging and CI use it; GPU runs are
    unchanged.

    Returns:
        bool: Whether a CPU process group was set up.
    """
    import datetime

    import torch
    import torch.distributed as dist
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise UserInputError(
            f'--launcher {launcher} needs CUDA GPUs, and none is available. '
            'On CPU, launch with torchrun (tools/dist_train.sh, '
            '--launcher pytorch), which uses the gloo backend.')
    if not dist.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        backend = dist_cfg.pop('backend', 'gloo')
        if backend != 'gloo':
            print_log(
                f'No CUDA device: using the gloo backend instead of '
                f'env_cfg.dist_cfg.backend="{backend}".',
                logger='current',
                level=logging.WARNING)
        if dist_cfg.get('timeout') is not None:
            dist_cfg['timeout'] = datetime.timedelta(
                seconds=dist_cfg['timeout'])
        dist.init_process_group(backend='gloo', **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:  # what the Runner builds without a wrapper config
        wrapper = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = dict(wrapper)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def rehearsal_config(cfg, iters: int, work_dir: str):
    """The config of a rehearsal (``tools/train.py --rehearse``).

    Every stage of the plan runs for one epoch of ``iters`` iterations
    (feature caches, stage switches and ``T`` included), with a checkpoint
    after every epoch and an evaluation at the end of every validating
    stage with one gallery draw (``num_trials=1``), in ``work_dir``.

    Args:
        cfg (Config): The merged training config (not modified).
        iters (int): Iterations per stage.
        work_dir (str): Where the rehearsal writes.

    Returns:
        Config: The rehearsal's config.
    """
    import copy
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    train_cfg = cfg.train_cfg
    train_cfg.stages = [dict(stage, epochs=1) for stage in train_cfg.stages]
    train_cfg.val_interval = 1
    train_cfg.max_iters_per_epoch = iters
    for name in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(name)
        if isinstance(evaluator, (dict, ConfigDict)) and \
                'num_trials' in evaluator:
            evaluator['num_trials'] = 1
    checkpoint = cfg.default_hooks.get('checkpoint')
    if isinstance(checkpoint, (dict, ConfigDict)):
        checkpoint.update(interval=1, max_keep_ckpts=-1)
    cfg.resume = False
    cfg.load_from = None
    return cfg


def check_pretrained_files(cfg) -> None:
    """Every ``pretrained`` of the model that names a local file must exist
    (otherwise it fails when the weights are loaded, after the model is
    built and the work directory written). Tags such as ``'openai'`` are
    left to the loader."""
    from mmvireid.models.utils.open_clip_builder import _looks_like_path

    def walk(node, where):
        if isinstance(node, (dict, ConfigDict)):
            for key, value in node.items():
                path = f'{where}.{key}'
                if key == 'pretrained' and isinstance(value, str) and \
                        '://' not in value and _looks_like_path(value) and \
                        not osp.isfile(osp.expanduser(value)):
                    raise UserInputError(
                        f'{path}: the weights file "{value}" does not exist '
                        f'(relative paths start at {osp.abspath(".")}). '
                        'For the toy configs, run `python '
                        'tools/pretrain_toy_clip.py --arch tiny_rn --out '
                        'data/toy_clip/tiny_rn.pth` or set '
                        'MMVIREID_TOY_CLIP_DIR.')
                walk(value, path)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{where}[{i}]')

    walk(cfg.get('model'), 'model')


def preflight_training(cfg) -> None:
    """Checks of a training config that need no dataset or model: the work
    directory can be written, and every stage's ``feature_cache`` settings
    are valid (otherwise refused only when the stage starts, possibly hours
    in)."""
    check_writable(cfg.work_dir, 'work_dir', is_dir=True)
    check_pretrained_files(cfg)
    from mmvireid.engine.hooks import StageSwitchHook
    stages = (cfg.get('train_cfg') or {}).get('stages') or []
    for i, stage in enumerate(stages):
        cache = stage.get('feature_cache') if hasattr(stage, 'get') else None
        if cache is None:
            continue
        try:
            StageSwitchHook._check_cache_cfg(stage.get('name'), dict(cache))
        except (KeyError, ValueError) as e:
            msg = e.args[0] if e.args and isinstance(e.args[0], str) \
                else str(e)
            raise UserInputError(
                f'train_cfg.stages[{i}].feature_cache: {msg}') from e


def check_writable(path: str, what: str, is_dir: bool) -> None:
    """Refuse an output path that cannot be written, before any work.

    Args:
        path (str): A file to create (``is_dir=False``) or a folder to
            create or fill (``is_dir=True``).
        what (str): The option that gave it, for the message.
        is_dir (bool): Whether ``path`` is a folder.
    """
    import os
    target = osp.abspath(path)
    if is_dir and osp.isdir(target):
        probe = target
    else:
        if osp.isdir(target):
            raise UserInputError(f'{what}: "{path}" is a folder; give a file '
                                 'path.')
        # the nearest existing ancestor must let us create what is missing
        probe = osp.dirname(target) if not is_dir else target
        while not osp.exists(probe):
            parent = osp.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not osp.isdir(probe):
            raise UserInputError(
                f'{what}: cannot create "{path}": "{probe}" is a file, not a '
                'folder.')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserInputError(
            f'{what}: cannot write "{path}": no write permission in '
            f'"{probe}". Choose another path.')


def _complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a complete torch zip checkpoint (a kill while
    writing leaves no zip directory at the end)."""
    import zipfile
    try:
        with open(path, 'rb') as f:
            if f.read(4) != b'PK\x03\x04':
                return False
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def newest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir`` with the largest
    N whose file is complete, or None."""
    import os
    found = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else ():
        match = re.fullmatch(r'(epoch|iter)_(\d+)\.pth', name)
        if match:
            found.append((int(match.group(2)), name))
    for _, name in sorted(found, reverse=True):
        path = osp.join(work_dir, name)
        if _complete_checkpoint(path):
            return path
    return None


def check_auto_resume(work_dir: str) -> Optional[str]:
    """Check ``--resume`` without a path before the Runner starts.

    MMEngine resumes from the file named in ``<work_dir>/last_checkpoint``.
    When that file is missing or empty (e.g. a run killed before it was
    first written) but complete ``epoch_N.pth`` files exist, resuming falls
    back to the newest of them and says so; with no checkpoint at all,
    training starts from scratch (said too: a re-queued job relies on it).
    A file pointing to a checkpoint that does not exist is refused, naming
    both.

    Returns:
        str or None: A checkpoint to resume from explicitly (the fallback),
        or None to let mmengine follow ``last_checkpoint`` (or start
        afresh).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    target = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip() or None
    if target is None:
        fallback = newest_complete_checkpoint(work_dir)
        why = 'is empty' if osp.isfile(pointer) else 'does not exist'
        if fallback is not None:
            print_log(
                f'--resume: "{pointer}" {why} (a run killed before it was '
                f'written); resuming from the newest complete checkpoint '
                f'"{fallback}".',
                logger='current',
                level=logging.WARNING)
            return fallback
        print_log(
            f'--resume: no checkpoint in "{work_dir}"; training starts from '
            'scratch.',
            logger='current',
            level=logging.WARNING)
        return None
    if '://' not in target and not osp.isfile(target):
        raise UserInputError(
            f'--resume: "{pointer}" names the checkpoint "{target}", which '
            'does not exist. Resume from an existing checkpoint with '
            f'--resume {work_dir}/epoch_<N>.pth.')
    return None


def check_resume_checkpoint(path: str) -> None:
    """Fail fast when ``--resume PATH`` names no file or a truncated one.

    A checkpoint in torch's zip format (the default since torch 1.6) that
    does not end with a complete zip directory was cut short (an interrupted
    copy, or a kill while a non-atomic writer saved it). Files in the legacy
    format are left to the loader, which names them if they are corrupt.
    """
    import zipfile
    if not osp.isfile(path):
        raise UserInputError(
            f'--resume: checkpoint "{path}" does not exist. Pass an existing '
            '.pth file, or --resume without a path to resume from the '
            'latest checkpoint of the work directory.')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if not magic or (magic == b'PK\x03\x04' and not zipfile.is_zipfile(path)):
        raise UserInputError(
            f'--resume: checkpoint "{path}" is corrupt or truncated (empty, '
            'or its zip directory is missing). Resume from an earlier '
            'checkpoint of the same work directory.')


def check_resume_compatible(cfg, path: str) -> None:
    """Before anything is written: the checkpoint to resume must come from
    this config's method (the model type in its saved config) and from a
    stage plan this one can continue (:func:`check_resume_plan`). Its
    tensors are compared with the model when the Runner loads it."""
    from mmvireid.engine.hooks.stage_switch_hook import check_resume_plan
    from mmvireid.utils.checkpoint import (CheckpointMismatchError,
                                           checkpoint_model_type,
                                           safe_load_checkpoint)
    checkpoint = safe_load_checkpoint(path, map_location='cpu', mmap=True)
    if not isinstance(checkpoint, dict):
        return
    saved = checkpoint_model_type(checkpoint)
    own = (cfg.get('model') or {}).get('type')
    if saved and isinstance(own, str) and \
            saved.split('.')[-1] != own.split('.')[-1]:
        raise CheckpointMismatchError(
            f'--resume: checkpoint "{path}" was saved by a {saved} model, '
            f'but this config trains a {own}. Resume with the config it '
            'was trained with, or start a new work directory.')
    stages = (cfg.get('train_cfg') or {}).get('stages')
    if stages:
        check_resume_plan(stages, checkpoint.get('meta') or {})


def disable_persistent_workers(cfg, force: bool = False) -> None:
    """``persistent_workers`` is invalid with ``num_workers=0``: drop it."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        if force or loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


_UNREGISTERED = re.compile(
    r'(?P<type>\S+) is not in the (?:(?P<scope>[\w.]+)::)?(?P<registry>.+?) '
    r'registry')
_UNEXPECTED_KWARG = re.compile(
    r'(?P<cls>\w+)\.__init__\(\) got an unexpected keyword argument '
    r"'(?P<key>\w+)'")


def _registry_of(scope: Optional[str], name: str):
    for registry in _registries():
        if registry.name == name and scope in (None, registry.scope):
            return registry
    return None


def _init_arguments(cls):
    """Keyword names ``cls(...)`` accepts (following ``**kwargs`` into the
    base classes); None if it accepts anything."""
    import inspect
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names.update(
            p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            names.discard('self')
            return names
    return None


def explain_error(error: BaseException) -> Optional[str]:
    """A one-paragraph explanation of a user error, or None for a bug.

    Recognised: :class:`UserInputError`, missing files, an unregistered
    component ``type`` (with the closest registered names), an unknown
    argument of a component (with the closest argument names), unreadable or
    unsafe checkpoints and undecodable images.
    """
    from mmvireid.datasets.transforms import CorruptImageError
    from mmvireid.engine.hooks import NonFiniteLossError
    from mmvireid.utils.fileio import DiskFullError
    from mmvireid.utils.checkpoint import (CorruptCheckpointError,
                                           UnsafeCheckpointError)
    if isinstance(error, (UserInputError, NonFiniteLossError, DiskFullError)):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return error.args[0] if error.args and isinstance(error.args[0],
                                                          str) else str(error)
    if isinstance(error, (UnsafeCheckpointError, CorruptCheckpointError,
                          CorruptImageError)):
        return str(error)
    text = error.args[0] if error.args and isinstance(error.args[0],
                                                      str) else str(error)
    if isinstance(error, KeyError):
        match = _UNREGISTERED.search(text)
        if match:
            type_name = match.group('type').strip('`\'"')
            registry = _registry_of(
                match.group('scope'), match.group('registry'))
            names = [] if registry is None else closest_names(
                type_name,
                _registered_names(registry, with_scopes='.' in type_name))
            where = match.group('registry') if registry is None else \
                f'{registry.scope}::{registry.name}'
            return (f'unknown {match.group("registry")} type "{type_name}" '
                    f'(not in the {where} registry).' + _did_you_mean(names))
    if isinstance(error, TypeError):
        match = _UNEXPECTED_KWARG.search(text)
        if match:
            cls = None
            for registry in _registries():
                try:
                    cls = registry.get(match.group('cls'))
                except Exception:
                    cls = None
                if cls is not None:
                    break
            accepted = _init_arguments(cls) if isinstance(cls, type) else None
            key = match.group('key')
            hint = _did_you_mean(closest_names(key, accepted or ()))
            known = '' if not accepted else \
                f' It accepts: {", ".join(sorted(accepted))}.'
            return (
                f'{match.group("cls")} got an unknown config key "{key}".' +
                hint + known)
    return None


def run_or_explain(fn: Callable):
    """Run ``fn``; user errors become one clear message and exit code 1.

    Missing files, :class:`UserInputError`, unreadable or unsafe checkpoints,
    unregistered component types and unknown component arguments are user
    errors (see :func:`explain_error`): a deep traceback would only hide a
    message that already names the file, key or value at fault. Anything
    else is re-raised with its traceback.
    """
    try:
        return fn()
    except Exception as e:  # noqa: B902 - re-raised unless explained
        msg = explain_error(e)
        if msg is None:
            raise
        print(f'ERROR: {msg}', file=sys.stderr)
        sys.exit(1)
