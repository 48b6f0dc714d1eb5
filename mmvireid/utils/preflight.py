# Copyright (c) mmvireid contributors. All rights reserved.
"""Checks the tools run before anything is built, written or downloaded.

``mmvireid.utils`` is the base layer: the engine imports it at module level
(and so may any other subpackage). The checks here that need an upper layer
(the engine's stage parsing, the datasets' description errors, the models'
weight paths) import it inside the function, so that this module never
depends on them at import time and no import cycle can form.
"""
import copy
import difflib
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, ConfigDict

from mmvireid.registry import DATA_SAMPLERS, DATASETS
from .errors import (UserInputError, _did_you_mean, _registered_names,
                     _registries, closest_names)

__all__ = [
    'preflight_config',
    'preflight_datasets',
    'preflight_training',
    'check_cfg_options',
    'load_config',
    'check_writable',
    'check_pretrained_files',
    'check_num_classes',
    'rehearsal_config',
    'RUNNER_KEYS',
    'LOADERS',
]

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
            # upper layer, imported here (see the module docstring)
            from mmvireid.datasets.descriptions import DescriptionsError
            if isinstance(e, DescriptionsError) and cfg.filename:
                # the exact command for this config (EEES descriptions)
                msg = e.message_for(cfg.filename,
                                    _data_root_override(cfg, where, root))
            raise UserInputError(f'{where} ({name}): {msg}') from e
        if check_files:
            _check_listed_files(where, name, root, dataset)
        if where == 'train_dataloader.dataset':
            _check_train_sampler(cfg, where, name, dataset)
            model = cfg.get('model') or {}
            check_num_classes(
                model.get('num_classes') if hasattr(model, 'get') else None,
                dataset, where)


def _data_root_override(cfg, where: str, root: str) -> Optional[str]:
    """``root`` if it is not the data_root the config file declares for
    ``where`` (changed with --cfg-options), else None."""
    try:
        declared = Config.fromfile(cfg.filename)
        for key in where.split('.'):
            declared = declared[key]
        declared = declared.get('data_root')
    except Exception:  # noqa: B902 - a hint only; keep the original error
        return None
    if declared is not None and osp.normpath(str(declared)) == \
            osp.normpath(str(root)):
        return None
    return root


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


def check_num_classes(num_classes: Optional[int],
                      dataset,
                      where: str = 'train_dataloader.dataset') -> None:
    """``model.num_classes`` must be the train set's number of identities.

    Checked here on the config, before the model is built (which for RN50
    configs means before the CLIP download), and by
    :class:`~mmvireid.engine.runner.MultiStageTrainLoop` on the built model
    for runs that skip the tools.

    Args:
        num_classes (int, optional): ``model.num_classes``; None skips.
        dataset: The train set; its ``metainfo['num_classes']`` (if any)
            is the number of train identities.
        where (str): The config key of the train set, for the message.
    """
    found = getattr(dataset, 'metainfo', {}).get('num_classes')
    if num_classes is not None and found is not None and \
            num_classes != found:
        raise UserInputError(
            f'model.num_classes={num_classes} but {where} '
            f'({type(dataset).__name__}) has {found} train identities; set '
            f'model.num_classes={found} in the config (or --cfg-options '
            f'model.num_classes={found}).')


def _check_train_sampler(cfg, where: str, name: str, dataset) -> None:
    """Build the train sampler once: e.g. CrossModalIdentitySampler refuses
    identities with images in one modality only, naming their labels."""
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


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply ``--cfg-options`` after
    :func:`check_cfg_options` has refused misspelt keys, as the tools do.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): ``--cfg-options`` key/value pairs.
    """
    cfg = Config.fromfile(path)
    if cfg_options is not None:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


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
                top, [str(k) for k in cfg.keys()] + sorted(RUNNER_KEYS),
                n=1,
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
    # upper layer, imported here (see the module docstring)
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
    directory can be written, the local weight files exist, and the stage
    plan is one :class:`MultiStageTrainLoop` accepts (every stage's keys and
    ``feature_cache`` settings), before the work directory is written."""
    check_writable(cfg.work_dir, 'work_dir', is_dir=True)
    check_pretrained_files(cfg)
    stages = (cfg.get('train_cfg') or {}).get('stages')
    if stages is not None:
        # the engine imports this module: importing it at the top would be
        # a cycle (see the module docstring)
        from mmvireid.engine.runner import parse_stages
        parse_stages(stages)


def check_writable(path: str, what: str, is_dir: bool) -> None:
    """Refuse an output path that cannot be written, before any work.

    Args:
        path (str): A file to create (``is_dir=False``) or a folder to
            create or fill (``is_dir=True``).
        what (str): The option that gave it, for the message.
        is_dir (bool): Whether ``path`` is a folder.
    """
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
