# Copyright (c) mmvireid contributors. All rights reserved.
"""Build open_clip CLIP models and load CLIP weights into them or their parts.

Building and loading are separate on purpose: the encoders first build a
randomly initialised CLIP (offline, cheap to test), cut it to the part they
keep and adapt it to person images (strides, rectangular grids), and only load
the weights in ``init_weights()``. Loading then has to cope with

* open_clip pretrained tags (``'openai'``, ``'laion2b_s34b_b88k'``, ...), which
  download from the Hugging Face hub on users' machines;
* local ``state_dict`` / safetensors files, read with ``weights_only=True``;
* OpenAI's original ``RN50.pt`` / ``ViT-B-16.pt``, which are TorchScript
  archives: loading one runs code from the file, so it is refused unless
  ``allow_torchscript=True`` (or converted once with
  :func:`convert_openai_torchscript`);
* a grid positional embedding of another size (224 checkpoint, 288x144 model).
"""
import logging
import os
import os.path as osp
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize

from .pos_embed import infer_pos_embed_grid, resize_grid_pos_embed

__all__ = [
    'build_open_clip', 'load_clip_weights', 'load_clip_state_dict',
    'convert_openai_torchscript', 'is_torchscript_archive', 'resnet_grid_size',
    'check_pretrained_activation', 'init_clip_tower'
]

ArchType = Union[str, dict]

# Keys that OpenAI's TorchScript archives carry next to the weights; they are
# not parameters of an open_clip model.
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')
_CHECKPOINT_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors', '.ckpt')
_TORCHSCRIPT_HINT = (
    'Convert it once to a plain state_dict (this runs the archive, so only do '
    'it for a file you trust, e.g. the official OpenAI release):\n'
    '    python -c "from mmvireid.models.utils import '
    'convert_openai_torchscript; convert_openai_torchscript(\'{src}\', '
    '\'{dst}\')"\n'
    'and pass the .pth file as `pretrained`, or pass '
    '`allow_torchscript=True`.')


def _import_open_clip():
    try:
        import open_clip
    except ImportError as e:  # pragma: no cover - open_clip is a requirement
        raise ImportError('The CLIP encoders need open_clip: `pip install '
                          '"open_clip_torch>=2.23"`.') from e
    return open_clip


def resnet_grid_size(input_size: Sequence[int], last_stride: int = 2) -> tuple:
    """Output grid (h, w) of a CLIP ``ModifiedResNet`` body for an input size.

    The stem conv (3x3, stride 2, padding 1) gives ``ceil(s / 2)``; the stem
    average pool and the anti-aliasing pools of layers 2, 3 (and 4 unless
    ``last_stride == 1``) each floor-divide by 2. 288x144 gives 9x4 with the
    original stride and 18x9 with ``last_stride=1``.
    """
    if last_stride not in (1, 2):
        raise ValueError(f'last_stride must be 1 or 2, got {last_stride}')
    num_pools = 4 if last_stride == 2 else 3
    out = []
    for size in input_size:
        size = (int(size) + 1) // 2
        for _ in range(num_pools):
            size //= 2
        if size < 1:
            raise ValueError(f'input size {tuple(input_size)} is too small '
                             'for a CLIP ResNet (the feature map vanishes)')
        out.append(size)
    return tuple(out)


def _check_arch_dict(arch: dict) -> None:
    unknown = set(arch) - {'embed_dim', 'vision_cfg', 'text_cfg'}
    missing = {'embed_dim', 'vision_cfg', 'text_cfg'} - set(arch)
    if unknown or missing:
        raise KeyError(
            'A CLIP architecture dict needs exactly the keys embed_dim, '
            f'vision_cfg and text_cfg; missing {sorted(missing)}, unknown '
            f'{sorted(unknown)} in {arch}')


def build_open_clip(arch: ArchType,
                    pretrained: Optional[str] = None,
                    quick_gelu: bool = True,
                    **load_kwargs) -> nn.Module:
    """Build an open_clip ``CLIP`` in fp32 on the CPU.

    Args:
        arch (str | dict): An open_clip model name (``'RN50'``,
            ``'ViT-B-16'``; ``'ViT-B/16'`` works too), or a dict
            ``dict(embed_dim=..., vision_cfg=dict(...), text_cfg=dict(...))``
            passed to ``open_clip.model.CLIP`` (random init, no download).
            A ResNet ``vision_cfg`` (``layers`` a 4-tuple) may give a
            rectangular ``image_size=(H, W)``, which open_clip itself rejects:
            the model is built square and its attention-pool positional
            embedding resized to the ``(H, W)`` grid.
        pretrained (str, optional): Weights loaded right away with
            :func:`load_clip_weights` (a tag or a file). Default: None,
            random init.
        quick_gelu (bool): Use QuickGELU as the OpenAI weights need (the
            ``-quickgelu`` open_clip variants). open_clip silently uses GELU
            when a local OpenAI file is loaded into a plain name, so the
            default is True. Default: True.
        **load_kwargs: Forwarded to :func:`load_clip_weights`.

    Returns:
        open_clip.CLIP: The model, in train mode, fp32, on the CPU.
    """
    open_clip = _import_open_clip()
    check_pretrained_activation(arch, pretrained, quick_gelu)
    if isinstance(arch, str):
        name = arch.replace('/', '-')
        if name not in open_clip.list_models():
            raise ValueError(
                f'Unknown open_clip architecture {arch!r}; pick one of '
                'open_clip.list_models() (e.g. RN50, ViT-B-16) or pass a '
                'dict(embed_dim=..., vision_cfg=..., text_cfg=...)')
        # The tag is loaded by load_clip_weights (with our grid resizing),
        # never by create_model, so nothing is downloaded here.
        model = open_clip.create_model(
            name,
            pretrained=None,
            precision='fp32',
            device='cpu',
            force_quick_gelu=quick_gelu)
    elif isinstance(arch, dict):
        _check_arch_dict(arch)
        vision_cfg = dict(arch['vision_cfg'])
        text_cfg = dict(arch['text_cfg'])
        image_size = vision_cfg.get('image_size', 224)
        if isinstance(image_size, (list, tuple)):
            image_size = tuple(int(s) for s in image_size)
            vision_cfg['image_size'] = image_size
        is_resnet = isinstance(vision_cfg.get('layers'), (list, tuple))
        if is_resnet:
            vision_cfg['layers'] = tuple(vision_cfg['layers'])
            # ModifiedResNet computes `image_size // 32`: give it an int.
            if isinstance(image_size, tuple):
                vision_cfg['image_size'] = image_size[0]
        model = open_clip.model.CLIP(
            int(arch['embed_dim']),
            vision_cfg,
            text_cfg,
            quick_gelu=quick_gelu)
        if is_resnet and isinstance(image_size, tuple):
            set_attnpool_grid(model.visual, resnet_grid_size(image_size, 2))
            model.visual.image_size = image_size
    else:
        raise TypeError('arch must be an open_clip model name or a dict, got '
                        f'{type(arch).__name__}')
    if hasattr(model.visual, 'attnpool'):
        # Record the attention-pool grid so that loading can resize it (a
        # state dict alone cannot tell 18x9 from 27x6).
        attnpool = model.visual.attnpool
        if getattr(attnpool, 'grid_size', None) is None:
            side = infer_pos_embed_grid(
                attnpool.positional_embedding.shape[0] - 1)
            attnpool.grid_size = side
    model = model.float()
    if pretrained is not None:
        load_clip_weights(
            model,
            pretrained,
            arch=arch if isinstance(arch, str) else None,
            **load_kwargs)
    return model


def set_attnpool_grid(visual: nn.Module,
                      grid: Sequence[int],
                      mode: str = 'bilinear') -> None:
    """Fit a ``ModifiedResNet``'s attention pool to a ``grid`` (h, w) map.

    Its positional embedding is interpolated from the current grid (read
    from ``attnpool.grid_size``, or taken as square) and the new grid is
    recorded in ``attnpool.grid_size`` for :func:`load_clip_weights`.
    """
    attnpool = visual.attnpool
    grid = tuple(int(g) for g in grid)
    old = attnpool.positional_embedding.data
    src = getattr(attnpool, 'grid_size', None)
    if src is None:
        src = infer_pos_embed_grid(old.shape[0] - 1, grid)
    attnpool.positional_embedding = nn.Parameter(
        resize_grid_pos_embed(old, src, grid, num_extra_tokens=1, mode=mode))
    attnpool.grid_size = grid


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``).

    Both TorchScript and ``torch.save`` write zip files; only TorchScript
    stores ``constants.pkl`` and a ``code/`` folder.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(
            n.endswith('/constants.pkl') or '/code/' in n
            for n in zf.namelist())


def convert_openai_torchscript(src: str, dst: str) -> None:
    """Convert an OpenAI TorchScript CLIP archive to a plain state_dict.

    ``torch.jit.load`` executes the archive's code: run this only on files
    from a trusted source. The weights are saved in fp32 (OpenAI stores some
    in fp16) without the non-weight entries ``input_resolution``,
    ``context_length`` and ``vocab_size``; ``dst`` then loads with
    ``torch.load(weights_only=True)`` or as ``pretrained=dst``.
    """
    print_log(
        f'Loading TorchScript archive {src} with torch.jit.load (this runs '
        'code stored in the file)',
        logger='current')
    scripted = torch.jit.load(src, map_location='cpu')
    state_dict = OrderedDict((k, v.float() if v.is_floating_point() else v)
                             for k, v in scripted.state_dict().items()
                             if k not in _OPENAI_EXTRA_KEYS)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(state_dict, dst)
    print_log(f'Saved {len(state_dict)} tensors to {dst}', logger='current')


def _looks_like_path(pretrained: str) -> bool:
    return (os.sep in pretrained or '/' in pretrained
            or pretrained.endswith(_CHECKPOINT_SUFFIXES))


def _find_tag_cfg(arch: str, tag: str) -> dict:
    """open_clip's pretrained config of ``tag`` for ``arch`` or its
    ``-quickgelu`` twin (open_clip files some tags under one name only);
    ``{}`` if the tag is unknown."""
    open_clip = _import_open_clip()
    name = arch.replace('/', '-')
    twin = (
        name[:-len('-quickgelu')] if name.endswith('-quickgelu') else name +
        '-quickgelu')
    for candidate in (name, twin):
        cfg = open_clip.get_pretrained_cfg(candidate, tag)
        if cfg:
            return cfg
    return {}


def check_pretrained_activation(arch: ArchType, pretrained: Optional[str],
                                quick_gelu: bool) -> None:
    """Refuse an open_clip tag trained with the other GELU flavour.

    OpenAI weights need QuickGELU and most LAION / DataComp weights plain
    GELU; the wrong one runs without error but gives worse features. Files
    and unknown tags are not checked (a file does not say).
    """
    if (pretrained is None or not isinstance(arch, str)
            or osp.isfile(pretrained) or _looks_like_path(pretrained)):
        return
    cfg = _find_tag_cfg(arch, pretrained)
    if cfg and bool(cfg.get('quick_gelu', False)) != bool(quick_gelu):
        raise ValueError(
            f'open_clip weights {arch}/{pretrained} were trained with '
            f'quick_gelu={bool(cfg.get("quick_gelu", False))}, but '
            f'quick_gelu={quick_gelu} was asked for; set quick_gelu='
            f'{bool(cfg.get("quick_gelu", False))}')


def _resolve_pretrained(pretrained: str, arch: Optional[ArchType],
                        cache_dir: Optional[str]) -> str:
    """Map a tag to a downloaded file; return files unchanged."""
    if osp.isfile(pretrained):
        return pretrained
    if _looks_like_path(pretrained):
        raise FileNotFoundError(
            f'CLIP checkpoint file not found: {pretrained!r}')
    if not isinstance(arch, str):
        raise ValueError(
            f'pretrained={pretrained!r} is not a file, so it must be an '
            'open_clip pretrained tag, which needs a named architecture '
            f'(e.g. arch=\'RN50\'); got arch={arch!r}')
    open_clip = _import_open_clip()
    name = arch.replace('/', '-')
    cfg = _find_tag_cfg(name, pretrained)
    if not cfg:
        raise ValueError(
            f'{pretrained!r} is neither an existing file nor an open_clip '
            f'pretrained tag of {arch!r}; its tags are '
            f'{open_clip.list_pretrained_tags_by_model(name)}')
    print_log(
        f'Downloading (or reusing the cached) open_clip weights '
        f'{name}/{pretrained}',
        logger='current')
    return open_clip.download_pretrained(cfg, cache_dir=cache_dir)


def load_clip_state_dict(
        pretrained: str,
        arch: Optional[ArchType] = None,
        allow_torchscript: bool = False,
        cache_dir: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint into a flat ``{key: tensor}`` dict.

    Args:
        pretrained (str): A local file (state_dict ``.pt/.pth/.bin``,
            ``.safetensors``, a ``{'state_dict': ...}`` wrapper, or an OpenAI
            TorchScript archive) or an open_clip pretrained tag of ``arch``.
        arch (str | dict, optional): Needed only for a tag.
        allow_torchscript (bool): Load TorchScript archives with
            ``torch.jit.load``, which runs code from the file. Default: False
            (refuse with the conversion command).
        cache_dir (str, optional): Download cache for tags.

    Returns:
        dict[str, Tensor]: Keys as in an open_clip ``CLIP`` state dict.
    """
    path = _resolve_pretrained(pretrained, arch, cache_dir)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        checkpoint = load_file(path, device='cpu')
    elif is_torchscript_archive(path):
        if not allow_torchscript:
            dst = osp.splitext(path)[0] + '_state_dict.pth'
            raise RuntimeError(
                f'{path} is a TorchScript archive (like OpenAI\'s original '
                'CLIP .pt files); loading it would run code stored in the '
                'file, so it is refused. ' +
                _TORCHSCRIPT_HINT.format(src=path, dst=dst))
        print_log(
            f'Loading TorchScript archive {path} with torch.jit.load '
            '(allow_torchscript=True; this runs code stored in the file)',
            logger='current')
        checkpoint = torch.jit.load(path, map_location='cpu').state_dict()
    else:
        try:
            checkpoint = torch.load(
                path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise RuntimeError(
                f'Could not read {path} with torch.load(weights_only=True): '
                f'{e}\nA CLIP checkpoint should be a plain state_dict (or '
                'safetensors) file; extract the tensors of a trusted '
                'checkpoint with torch.load(weights_only=False) and save '
                'them again.') from e
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise TypeError(f'{path} does not hold a state_dict of tensors (got '
                        f'{type(checkpoint).__name__})')
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return OrderedDict(
        (k, v) for k, v in checkpoint.items() if k not in _OPENAI_EXTRA_KEYS)


def _owner_grid(module: nn.Module, key: str) -> Optional[tuple]:
    """The ``grid_size`` recorded on the module that owns parameter ``key``
    (ViT ``visual`` or a ResNet ``attnpool``); None for the text embedding."""
    owner_name = key.rpartition('.')[0]
    try:
        owner = module.get_submodule(owner_name) if owner_name else module
    except AttributeError:
        return None
    grid = getattr(owner, 'grid_size', None)
    if grid is None:
        return None
    return (grid, grid) if isinstance(grid, int) else tuple(grid)


def _format_keys(keys, limit: int = 20) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return f'[{shown}{more}]'


def load_clip_weights(module: nn.Module,
                      pretrained: str,
                      arch: Optional[ArchType] = None,
                      prefix_filter: Optional[str] = None,
                      ignore_prefixes: Sequence[str] = (),
                      strict: bool = True,
                      allow_torchscript: bool = False,
                      interpolation: str = 'bilinear',
                      cache_dir: Optional[str] = None) -> dict:
    """Load CLIP weights into an open_clip CLIP or one of its parts.

    Grid positional embeddings (``positional_embedding`` of a ViT ``visual``
    and ``attnpool.positional_embedding`` of a ResNet ``visual``) whose size
    differs are interpolated to the grid recorded on their module
    (``grid_size``), keeping the CLS / mean token: a 224 checkpoint loads into
    a 288x144 model with overlapping patches or a stride-1 ``layer4``.

    Args:
        module (nn.Module): Where the weights go. Its state-dict keys must
            equal the checkpoint keys after filtering.
        pretrained (str): Tag or file, see :func:`load_clip_state_dict`.
        arch (str | dict, optional): The open_clip name, needed for a tag.
        prefix_filter (str, optional): Keep only checkpoint keys starting
            with it and strip it (``'visual.'`` loads the image tower into a
            ``visual`` module). Default: None, keep all keys.
        ignore_prefixes (Sequence[str]): Drop checkpoint keys starting with
            any of these (applied before ``prefix_filter``), e.g.
            ``('visual.', 'logit_scale', 'logit_bias')`` for the text tower.
        strict (bool): Raise if a key is missing, unexpected or of another
            shape (after resizing). Otherwise warn and load what matches.
        allow_torchscript (bool): See :func:`load_clip_state_dict`.
        interpolation (str): Grid interpolation mode. Default: 'bilinear'
            (as CLIP-ReID).
        cache_dir (str, optional): Download cache for tags.

    Returns:
        dict: ``missing_keys``, ``unexpected_keys``, ``mismatched_keys``
        (lists; empty after a strict load) and ``resized_keys``.
    """
    state_dict = load_clip_state_dict(
        pretrained,
        arch=arch,
        allow_torchscript=allow_torchscript,
        cache_dir=cache_dir)
    ignore_prefixes = tuple(ignore_prefixes)
    selected = OrderedDict()
    for key, value in state_dict.items():
        if ignore_prefixes and key.startswith(ignore_prefixes):
            continue
        if prefix_filter:
            if not key.startswith(prefix_filter):
                continue
            key = key[len(prefix_filter):]
        selected[key] = value
    if not selected:
        raise KeyError(
            f'No key of {pretrained} is left after prefix_filter='
            f'{prefix_filter!r} and ignore_prefixes={ignore_prefixes}; '
            f'its first keys are {_format_keys(list(state_dict)[:5])}')

    own_state = module.state_dict()
    resized, mismatched, mismatched_names = [], [], set()
    for key, value in list(selected.items()):
        if key not in own_state:
            continue
        target = own_state[key]
        if value.shape == target.shape:
            continue
        grid = _owner_grid(module, key)
        if (key.endswith('positional_embedding') and grid is not None
                and value.dim() == 2 and target.dim() == 2
                and value.shape[1] == target.shape[1]):
            num_extra = target.shape[0] - grid[0] * grid[1]
            src_grid = infer_pos_embed_grid(value.shape[0] - num_extra, grid)
            selected[key] = resize_grid_pos_embed(
                value, src_grid, grid, num_extra, mode=interpolation)
            resized.append(key)
            print_log(
                f'Resized {prefix_filter or ""}{key} from a {src_grid[0]}x'
                f'{src_grid[1]} to a {grid[0]}x{grid[1]} grid '
                f'({interpolation})',
                logger='current')
        else:
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs '
                              f'model {tuple(target.shape)}')
            mismatched_names.add(key)
            del selected[key]

    # BatchNorm fills a missing `num_batches_tracked` itself (older
    # checkpoints, OpenAI's RN50), so it is not reported as missing.
    missing = [
        k for k in own_state if k not in selected and k not in mismatched_names
        and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in selected if k not in own_state]
    if missing or unexpected or mismatched:
        msg = (f'Loading {pretrained} into {type(module).__name__} '
               f'(prefix_filter={prefix_filter!r}): '
               f'{len(missing)} missing keys {_format_keys(missing)}, '
               f'{len(unexpected)} unexpected keys '
               f'{_format_keys(unexpected)}, {len(mismatched)} keys of '
               f'another shape {_format_keys(mismatched)}')
        if strict:
            # Raised before anything is copied, so the module is unchanged.
            raise RuntimeError(msg)
        print_log(msg, logger='current', level=logging.WARNING)
        for key in unexpected:
            del selected[key]
    module.load_state_dict(selected, strict=False)
    print_log(
        f'Loaded {len(selected)} tensors from {pretrained} into '
        f'{type(module).__name__}',
        logger='current')
    return dict(
        missing_keys=missing,
        unexpected_keys=unexpected,
        mismatched_keys=mismatched,
        resized_keys=resized)


def init_clip_tower(tower: BaseModule, load: Callable[[], None]) -> None:
    """``init_weights`` of a CLIP tower: ``init_cfg`` first, CLIP weights last.

    The CLIP weights are loaded last, so that neither the tower's own
    ``init_cfg`` nor a parent's initialiser (which runs before its children's
    ``init_weights``) can overwrite them. A second call only warns: the
    weights are not reloaded over what training has changed since.

    Args:
        tower (BaseModule): The image or text encoder.
        load (callable): Loads the tower's CLIP weights (and does what must
            follow the load); called once, after ``init_cfg``.
    """
    if tower.is_init:
        print_log(
            f'init_weights of {type(tower).__name__} has been called more '
            'than once; the CLIP weights are not reloaded.',
            logger='current',
            level=logging.WARNING)
        return
    # The open_clip submodules have no init_weights of their own, so only
    # the tower's init_cfg has to run (BaseModule.init_weights would also
    # log, as a top-level module, the parameters as unchanged before the
    # CLIP weights are loaded).
    if tower.init_cfg:
        initialize(tower, tower.init_cfg)
    tower._is_init = True
    load()
