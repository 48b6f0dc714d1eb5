# Copyright (c) mmvireid contributors. All rights reserved.
"""Export a VI-ReID model's image encoder to ONNX and check it.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT \\
        --out model.onnx [--modality vis|ir] [--opset 17] [--atol 1e-4] \\
        [--overwrite]

An existing ``--out`` file is refused (nothing is written) unless
``--overwrite`` is given, as ``tools/test.py --out`` refuses.

The exported graph is the test-time retrieval path of the model: a batch of
normalised images ``images [B, 3, H, W]`` (float32, RGB, normalised with the
data preprocessor's mean/std, (H, W) = the encoder's ``input_size``) goes to
the L2-normalised retrieval feature ``feats [B, D]``, exactly what
``model.predict`` returns (``model.extract_feat`` + L2 normalisation, flip
test included when the config enables it). The batch dimension is dynamic.

* Models with a modality-specific stem (CSDN) export one graph per
  modality: ``--modality vis`` or ``--modality ir``.
* Models with a camera embedding (SIE) get a second input
  ``cam_ids [B]`` (int64, the dataset's camera numbers).
* The normalisation constants, the input size and the modality are stored in
  the ONNX metadata (``mmvireid.*`` keys), so a deployment can rebuild the
  preprocessing.

With onnxruntime installed (``pip install onnxruntime``, an optional
dependency) the tool runs the ONNX graph and PyTorch on the same random
batches of two sizes (which also proves the batch axis is dynamic) and prints
the maximum absolute difference; it exits with status 1 when it exceeds
``--atol``. The export uses PyTorch's TorchScript-based exporter
(``dynamo=False``), which needs no extra package beyond ``onnx``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config, DictAction

from mmvireid.apis import init_model
from mmvireid.structures import IR, MODALITIES, VIS, modality_id
from mmvireid.utils import register_all_modules
from mmvireid.utils.checkpoint import (CorruptCheckpointError,
                                       UnsafeCheckpointError)
from mmvireid.utils.tool_utils import UserInputError, check_writable


class FeatureExportWrapper(nn.Module):
    """``images [B, 3, H, W]`` (+ ``cam_ids [B]``) -> ``feats [B, D]``.

    Args:
        model (nn.Module): A model with ``extract_feat(inputs,
            data_samples)`` (every :class:`BaseStagedReID` method).
        modality (str): ``'vis'`` or ``'ir'``, fixed in the graph.
        with_cams (bool): Take camera numbers as a second input (SIE).
    """

    def __init__(self,
                 model: nn.Module,
                 modality: str = VIS,
                 with_cams: bool = False) -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f'modality must be "{VIS}" or "{IR}", got '
                             f'{modality!r}.')
        self.model = model
        self.modality_id = modality_id(modality)
        self.with_cams = with_cams

    def forward(self,
                images: torch.Tensor,
                cam_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        # The models read modality / cameras from a dict of tensors (the
        # feature-cache form of data samples), which traces cleanly.
        samples = dict(
            modality=torch.full_like(
                images[:, 0, 0, 0], self.modality_id, dtype=torch.long))
        if self.with_cams:
            samples['cam_id'] = cam_ids
        return F.normalize(self.model.extract_feat(images, samples), dim=1)


def build_model(cfg: Config,
                checkpoint: Optional[str],
                strict: bool = True) -> nn.Module:
    """Build ``cfg.model`` (no CLIP download) and load ``checkpoint``,
    strictly unless ``strict=False``; None keeps the random init (tests)."""
    register_all_modules(init_default_scope=False)
    return init_model(cfg, checkpoint, strict=strict)


def export_metadata(model: nn.Module, modality: str,
                    config: Optional[str]) -> Dict[str, str]:
    """What a deployment needs to prepare inputs, as ONNX metadata."""
    encoder = model.image_encoder
    pre = model.data_preprocessor
    meta = {
        'mmvireid.input':
        'images: float32 [B, 3, H, W], RGB, '
        '(pixel - mean) / std',
        'mmvireid.input_size':
        'x'.join(str(v) for v in encoder.input_size),
        'mmvireid.mean':
        ','.join(f'{float(v):.7g}' for v in pre.mean.flatten()),
        'mmvireid.std':
        ','.join(f'{float(v):.7g}' for v in pre.std.flatten()),
        'mmvireid.modality':
        modality,
        'mmvireid.output':
        'feats: float32 [B, D], L2-normalised; score = '
        'dot product',
    }
    if config:
        meta['mmvireid.config'] = osp.basename(config)
    return meta


def export_onnx(model: nn.Module,
                out_file: str,
                modality: str = VIS,
                opset: int = 17,
                batch_size: int = 2,
                config: Optional[str] = None) -> FeatureExportWrapper:
    """Export the retrieval path of ``model`` to ``out_file``.

    Returns:
        FeatureExportWrapper: The exported PyTorch module (eval mode).
    """
    try:  # optional: only the export needs it
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the "onnx" package: pip install '
                          'onnx (see requirements/optional.txt).') from None
    encoder = getattr(model, 'image_encoder', None)
    if encoder is None or not hasattr(model, 'extract_feat'):
        raise TypeError(f'{type(model).__name__} has no image_encoder / '
                        'extract_feat to export.')
    if getattr(encoder, 'modality_specific_stem', False):
        warnings.warn(f'{type(model).__name__} has a modality-specific stem; '
                      f'exporting the {modality!r} branch only.')
    with_cams = getattr(encoder, 'cam_embed', None) is not None
    wrapper = FeatureExportWrapper(model, modality, with_cams).eval()
    h, w = encoder.input_size
    images = torch.randn(batch_size, 3, h, w)
    args = (images, )
    input_names = ['images']
    dynamic_axes = {'images': {0: 'batch'}, 'feats': {0: 'batch'}}
    if with_cams:
        args = (images, torch.ones(batch_size, dtype=torch.long))
        input_names.append('cam_ids')
        dynamic_axes['cam_ids'] = {0: 'batch'}
    # In eval mode without autograd, nn.MultiheadAttention takes a fused
    # "fast path" (aten::_native_multi_head_attention) that has no ONNX
    # symbolic; the regular path exports as plain MatMul/Softmax.
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # Trace-time notes (shape checks become constants, the legacy
            # exporter's deprecation) are expected here.
            warnings.simplefilter('ignore')
            torch.onnx.export(
                wrapper,
                args,
                out_file,
                input_names=input_names,
                output_names=['feats'],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    onnx_model = onnx.load(out_file)
    onnx.checker.check_model(onnx_model)
    for key, value in export_metadata(model, modality, config).items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(onnx_model, out_file)
    return wrapper


def check_parity(wrapper: FeatureExportWrapper,
                 onnx_file: str,
                 batch_sizes: Sequence[int] = (1, 3),
                 seed: int = 0) -> float:
    """Max abs difference between onnxruntime and PyTorch features over
    random batches of ``batch_sizes`` images."""
    import onnxruntime as ort  # optional: only the parity check needs it
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    h, w = wrapper.model.image_encoder.input_size
    gen = torch.Generator().manual_seed(seed)
    max_diff = 0.
    for n in batch_sizes:
        images = torch.randn(n, 3, h, w, generator=gen)
        feeds = {'images': images.numpy()}
        cams = None
        if wrapper.with_cams:
            num_cams = wrapper.model.image_encoder.cam_embed.shape[0]
            cams = torch.randint(0, num_cams, (n, ), generator=gen)
            feeds['cam_ids'] = cams.numpy()
        with torch.no_grad():
            ref = wrapper(images, cams).numpy()
        (out, ) = session.run(['feats'], feeds)
        if out.shape != ref.shape:
            raise RuntimeError(f'ONNX output shape {out.shape} differs from '
                               f'PyTorch {ref.shape} for a batch of {n}.')
        max_diff = max(max_diff, float(np.abs(out - ref).max()))
    return max_diff


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export the image encoder (retrieval features) of a '
        'VI-ReID model to ONNX and check it against PyTorch')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        required=True,
        help='output .onnx file (refuses to overwrite an existing file '
        'unless --overwrite)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file')
    parser.add_argument(
        '--modality',
        choices=MODALITIES,
        default=VIS,
        help='branch to export for models with a modality-specific stem')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest accepted |onnx - torch| difference')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load a checkpoint that does not fit the config: the tensors '
        'that fit are loaded, the others are named in a warning')
    parser.add_argument(
        '--no-check',
        action='store_true',
        help='skip the onnxruntime parity check')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'ERROR: config "{args.config}" does not exist', file=sys.stderr)
        return 1
    # before anything is built or written, as the other tools do
    if osp.exists(args.out) and not args.overwrite:
        print(f'ERROR: --out: "{args.out}" exists; refusing to overwrite '
              'it. Choose another path, or pass --overwrite to replace it.',
              file=sys.stderr)
        return 1
    try:
        check_writable(args.out, '--out', is_dir=False)
    except UserInputError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        model = build_model(cfg, args.checkpoint, strict=not args.non_strict)
    except (FileNotFoundError, UserInputError, CorruptCheckpointError,
            UnsafeCheckpointError) as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    wrapper = export_onnx(
        model, args.out, args.modality, args.opset, config=args.config)
    print(f'ONNX model written to {args.out}')
    if args.no_check:
        return 0
    try:  # optional: without it the parity check is skipped
        import onnxruntime  # noqa: F401
    except ImportError:
        print('onnxruntime is not installed: parity check skipped '
              '(pip install onnxruntime)')
        return 0
    diff = check_parity(wrapper, args.out)
    print(f'max abs difference onnxruntime vs PyTorch: {diff:.3e} '
          f'(atol {args.atol:g})')
    if diff > args.atol:
        print('ERROR: parity check failed', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
