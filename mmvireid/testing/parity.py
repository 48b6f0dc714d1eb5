# Copyright (c) mmvireid contributors. All rights reserved.
"""Deterministic CLIP weights and compact records for the parity fixtures.

``tools/analysis_tools/reference_parity.py`` runs the reference code
(CLIP-ReID, CSDN) on CLIP weights made here, and records its outputs in
``tests/data/parity/*.pt``; the tests rebuild the same weights and compare
our models' outputs with the records.

Why the weights are generated, not stored: both references hard-code the
widths of the real models (CLIP-ReID's ``ViT-B-16`` head expects 768-d
tokens, CSDN's heads 2048/1024-d features, and both prompt learners 512-d
token embeddings), so even a one-block CLIP holds tens of millions of
parameters: far too many for a fixture file. Instead, every tensor is drawn
from NumPy's legacy ``RandomState``, whose stream NumPy guarantees never to
change, as integers in [-127, 127] times a float32 scale: no libm call, so
the same seed gives bit-identical weights on every machine. Each fixture
stores the digest of its weights (:func:`state_dict_digest`), and the tests
check it before comparing anything.
"""
import hashlib
import math
from collections import OrderedDict
from typing import Dict, Union

import numpy as np
import torch

__all__ = [
    'generate_clip_state_dict', 'state_dict_digest', 'record',
    'assert_recorded', 'uniform_tensor'
]

#: Tensors with at most this many elements are recorded in full; larger
#: ones as a summary (see :func:`record`).
FULL_RECORD_NUMEL = 4096
_NUM_SAMPLES = 64


def uniform_tensor(rng: np.random.RandomState, shape, bound: float,
                   offset: float = 0.) -> torch.Tensor:
    """``offset + k * bound / 127`` with integer ``k`` uniform in [-127, 127]
    (standard deviation ``bound / sqrt(3)``), in float32: the same bits on
    every machine for the same ``rng`` state (no libm call)."""
    ints = rng.randint(-127, 128, size=tuple(shape)).astype(np.float32)
    out = ints * np.float32(bound / 127.)
    if offset:
        out = out + np.float32(offset)
    return torch.from_numpy(out)


def _fill(name: str, shape, rng: np.random.RandomState) -> torch.Tensor:
    """Values for one CLIP state-dict entry, at CLIP's usual scales."""
    leaf = name.rsplit('.', 1)[-1]
    if leaf == 'num_batches_tracked':
        return torch.zeros(shape, dtype=torch.long)
    if leaf == 'running_var':
        return uniform_tensor(rng, shape, 0.5, offset=1.0)
    if leaf == 'running_mean':
        return uniform_tensor(rng, shape, 0.1)
    if name == 'logit_scale':
        return torch.full(shape, math.log(1 / 0.07), dtype=torch.float32)
    is_norm = any(part.startswith(('bn', 'ln')) for part in name.split('.'))
    is_norm = is_norm or '.downsample.1.' in name
    if is_norm and leaf == 'weight':
        return uniform_tensor(rng, shape, 0.2, offset=1.0)
    if 'bias' in leaf:
        return uniform_tensor(rng, shape, 0.05)
    if leaf in ('positional_embedding', 'class_embedding') or \
            name == 'token_embedding.weight':
        return uniform_tensor(rng, shape, 0.05)
    # conv / linear / projection matrices: unit-variance outputs
    if leaf in ('proj', 'text_projection'):
        fan_in = shape[0]
    else:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return uniform_tensor(rng, shape, math.sqrt(3. / fan_in))


def generate_clip_state_dict(arch: dict, seed: int) -> 'OrderedDict':
    """A full CLIP state dict (OpenAI key layout) with deterministic values.

    Args:
        arch (dict): open_clip architecture dict (``embed_dim``,
            ``vision_cfg``, ``text_cfg``), as the encoders' ``arch``. The
            image size must be square (the references infer a square grid
            from the positional embedding).
        seed (int): ``RandomState`` seed.

    Returns:
        OrderedDict[str, Tensor]: float32 tensors (``num_batches_tracked``
        int64), keys in open_clip's order, loadable by open_clip, by our
        encoders (``pretrained=`` a file holding it) and by the references'
        ``build_model``.
    """
    from mmvireid.models.utils.open_clip_builder import build_open_clip
    shapes = [(k, tuple(v.shape))
              for k, v in build_open_clip(arch).state_dict().items()
              if k != 'attn_mask']
    rng = np.random.RandomState(seed)
    return OrderedDict((k, _fill(k, s, rng)) for k, s in shapes)


def state_dict_digest(state_dict: Dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted keys, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def record(tensor: torch.Tensor,
           full_numel: int = FULL_RECORD_NUMEL) -> Union[torch.Tensor, dict]:
    """A fixture record of a float tensor: the tensor itself (detached,
    float32, on the CPU) when it is small, else a summary.

    The summary of a tensor with more than ``full_numel`` elements holds its
    ``shape``, float64 ``sum`` and L2 ``norm``, and ``sample``: 64 elements
    at evenly spaced flat positions ``index``.
    """
    tensor = tensor.detach().cpu().float()
    if tensor.numel() <= full_numel:
        return tensor.clone()
    flat = tensor.reshape(-1)
    index = torch.linspace(0, flat.numel() - 1, _NUM_SAMPLES).long()
    as64 = flat.double()
    return dict(
        shape=list(tensor.shape),
        sum=float(as64.sum()),
        norm=float(as64.norm()),
        index=index,
        sample=flat[index].clone())


def assert_recorded(actual: torch.Tensor,
                    expected: Union[torch.Tensor, dict],
                    name: str,
                    rtol: float = 1e-5,
                    atol: float = 1e-6,
                    atol_rms: float = 0.) -> None:
    """Assert that ``actual`` matches a :func:`record` of the reference.

    Elements (all of a small tensor, the sample of a large one) are compared
    with ``rtol``/``atol``, where ``atol`` grows by ``atol_rms`` times the
    reference tensor's root mean square (a rounding error is relative to
    the magnitudes summed, not to a result that happens to be near zero).
    A summary's norm is compared with ``rtol``, its sum with ``rtol`` times
    the norm times the square root of the size (a sum of n rounding errors
    grows like that). Raises AssertionError naming ``name`` and the largest
    deviation.
    """
    actual = actual.detach().cpu().float()
    if atol_rms:
        if isinstance(expected, torch.Tensor):
            rms = float(expected.double().pow(2).mean().sqrt())
        else:
            rms = expected['norm'] / math.sqrt(
                max(1, math.prod(expected['shape'])))
        atol = atol + atol_rms * rms
    if isinstance(expected, torch.Tensor):
        if tuple(actual.shape) != tuple(expected.shape):
            raise AssertionError(f'{name}: shape {tuple(actual.shape)} != '
                                 f'reference {tuple(expected.shape)}')
        torch.testing.assert_close(
            actual, expected, rtol=rtol, atol=atol, msg=lambda m: f'{name}: '
            f'{m}')
        return
    if list(actual.shape) != list(expected['shape']):
        raise AssertionError(f'{name}: shape {tuple(actual.shape)} != '
                             f'reference {tuple(expected["shape"])}')
    flat = actual.reshape(-1)
    torch.testing.assert_close(
        flat[expected['index']], expected['sample'], rtol=rtol, atol=atol,
        msg=lambda m: f'{name} (sampled elements): {m}')
    as64 = flat.double()
    norm, total = float(as64.norm()), float(as64.sum())
    if abs(norm - expected['norm']) > rtol * abs(expected['norm']) + atol:
        raise AssertionError(f'{name}: L2 norm {norm!r} != reference '
                             f'{expected["norm"]!r} (rtol {rtol})')
    sum_tol = (rtol * expected['norm'] * math.sqrt(flat.numel()) + atol)
    if abs(total - expected['sum']) > sum_tol:
        raise AssertionError(f'{name}: sum {total!r} != reference '
                             f'{expected["sum"]!r} (tolerance {sum_tol:.3g})')
