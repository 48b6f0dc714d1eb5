# Copyright (c) mmvireid contributors. All rights reserved.
"""The training step of every model and stage never makes the host wait for
the device (see ``mmvireid/models/utils/device.py``).

On a CPU-only machine host and "device" tensors are both CPU tensors, so the
test tells them apart the way the design does: the batch's metadata (labels,
modality ids, images before the transfer) and every tensor mmvireid code
builds without a ``device`` are *host* tensors (a :class:`HostTensor`
subclass, kept through ops); everything else — parameters, the preprocessed
inputs, whatever :func:`to_device` returns — stands for device memory. A
:class:`~torch.overrides.TorchFunctionMode` then records, during
``model.train_step``, every call that would wait for a GPU:

* reading device values on the host: ``item``, ``tolist``, ``__bool__``,
  ``__int__``, ``__float__``, ``__index__``, ``numpy``, ``cpu``, printing;
* ops whose output shape depends on device values: ``nonzero``,
  ``unique``, ``bincount``, ``masked_select``, ``isin``, ``equal``,
  boolean-mask indexing, one-argument ``where``;
* blocking host-to-device copies: ``.to(device)`` of a host tensor outside
  :func:`to_device`, ``torch.tensor / as_tensor(..., device=...)``, indexing
  a device tensor with a Python list;
* ops mixing host and device tensors (an implicit blocking copy on a GPU,
  or a device-mismatch error).

A call counts against mmvireid when the innermost frame outside torch that
made it is in the ``mmvireid`` package; calls made by mmengine or torch
themselves are collected apart (see :func:`test_what_mmengine_and_torch_do`).
"""
import os
import os.path as osp
import sys
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from toy_utils import TINY_RN, TINY_TEXT

import mmvireid
from mmvireid.models.utils import device as device_utils
from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

register_all_modules()

MMVIREID_DIR = osp.dirname(osp.abspath(mmvireid.__file__)) + os.sep
TORCH_DIR = osp.dirname(osp.abspath(torch.__file__)) + os.sep
THIS_FILE = osp.abspath(__file__)
TO_DEVICE_CODE = device_utils.to_device.__code__

TEXT, RN = TINY_TEXT, TINY_RN
# 1-layer ViT at 32x16
VIT = dict(
    embed_dim=32,
    vision_cfg=dict(
        image_size=(32, 16), patch_size=8, width=32, layers=1,
        head_width=16),
    text_cfg=TEXT)
NUM_CLASSES = 6
P, K = 2, 2  # identities per batch, images per identity and modality


# ---------------------------------------------------------------------- #
# host / device bookkeeping
# ---------------------------------------------------------------------- #
class HostTensor(torch.Tensor):
    """A CPU tensor standing for host memory (plain tensors stand for the
    device). Ops on it return HostTensors (torch's default subclass
    propagation)."""


def host(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(HostTensor)


def _is_host(t) -> bool:
    return isinstance(t, HostTensor)


def _caller():
    """``(filename, lineno, function, code)`` of the innermost frame
    outside torch and this file's harness."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        harness = name == THIS_FILE and frame.f_code.co_name in (
            '__torch_function__', '_record')
        if not name.startswith(TORCH_DIR) and not harness:
            return (name, frame.f_lineno, frame.f_code.co_name,
                    frame.f_code)
        frame = frame.f_back
    return ('?', 0, '?', None)


def _has_sequence_index(index) -> bool:
    """Whether an indexing key holds a Python list or a numpy array."""
    parts = index if isinstance(index, tuple) else (index, )
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


def _torch_made_on_cpu(kwargs) -> bool:
    """A factory call from inside torch naming the CPU: host memory on a
    GPU machine too. (A ``device`` named by mmvireid code is the model's
    device, which is the CPU in this test.)"""
    device = kwargs.get('device')
    if device is None or torch.device(device).type != 'cpu':
        return False
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == THIS_FILE:
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(
        TORCH_DIR)


SYNC_READS = {
    'item', 'tolist', '__bool__', '__int__', '__float__', '__index__',
    '__complex__', 'numpy', 'cpu', '__repr__', '__str__', '__format__'
}
SHAPE_FROM_VALUES = {
    'nonzero', 'argwhere', 'unique', 'unique_consecutive', 'masked_select',
    'bincount', 'isin', 'equal', 'allclose'
}
FACTORIES = {
    'tensor', 'as_tensor', 'from_numpy', 'arange', 'zeros', 'ones', 'full',
    'empty', 'rand', 'randn', 'randint', 'linspace', 'eye'
}


def _target_device(func_name, args, kwargs):
    """Whether a ``to`` / ``as_tensor`` / ``tensor`` call names a device."""
    if kwargs.get('device') is not None:
        return True
    if func_name in ('to', 'cuda'):
        return func_name == 'cuda' or any(
            isinstance(a, (torch.device, str)) or
            (isinstance(a, torch.Tensor) and not _is_host(a))
            for a in args[1:])
    return False


class SyncDetector(TorchFunctionMode):
    """Record the calls that would wait for a GPU; see the module
    docstring."""

    def __init__(self):
        super().__init__()
        self.events = []  # (kind, op, filename, lineno, function)

    def _record(self, kind, op):
        filename, lineno, function, _ = _caller()
        self.events.append((kind, op, filename, lineno, function))

    def mmvireid_events(self):
        return [e for e in self.events if e[2].startswith(MMVIREID_DIR)]

    def other_events(self):
        return [e for e in self.events if not e[2].startswith(MMVIREID_DIR)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', str(func))
        tensors = [
            t for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        ]
        hosts = [t for t in tensors if _is_host(t)]
        devices = [t for t in tensors if not _is_host(t)]

        # host -> device copies
        moves = name in ('to', 'cuda', 'as_tensor', 'tensor') and \
            _target_device(name, args, kwargs) and \
            not _torch_made_on_cpu(kwargs)
        if moves and hosts:
            if _caller()[3] is not TO_DEVICE_CODE:
                self._record('blocking host->device copy', name)
            out = func(*args, **kwargs)
            return out.as_subclass(torch.Tensor).clone()
        if moves and name == 'tensor' or (
                name == 'as_tensor' and moves and not tensors):
            # a device tensor made from Python data
            self._record('blocking host->device copy', name)

        # ops on device values
        if devices:
            if name in SYNC_READS or name in SHAPE_FROM_VALUES:
                self._record('device value read on the host', name)
            elif name == 'where' and len(args) + len(kwargs) == 1:
                self._record('device value read on the host', 'where(cond)')
            elif name in ('__getitem__', '__setitem__', 'index_put_',
                          'index_put') and any(
                              t.dtype == torch.bool
                              for t in tensors[1:] if not _is_host(t)):
                self._record('device value read on the host',
                             f'{name}[bool mask]')
            elif name in ('__getitem__', '__setitem__') and \
                    _has_sequence_index(args[1]):
                # x[[2, 1, 0]]: torch makes the index on the device from
                # Python data, a blocking copy
                self._record('blocking host->device copy',
                             f'{name}[list index]')
            if any(t.dim() > 0 for t in hosts):
                self._record('host and device tensors mixed', name)

        out = func(*args, **kwargs)
        # host memory: a tensor made without naming a device, or one torch
        # itself makes on the CPU (the step counters of its optimizers)
        if name in FACTORIES and not tensors and \
                isinstance(out, torch.Tensor) and not _is_host(out) and (
                    kwargs.get('device') is None
                    or _torch_made_on_cpu(kwargs)):
            out = host(out)
        return out


def host_batch(batch):
    """Put a batch's host data (images, labels, modality ids) in
    HostTensors, as the data loader hands it over."""
    inputs = batch['inputs']
    if isinstance(inputs, torch.Tensor):
        inputs = host(inputs)
    else:
        inputs = [host(x) for x in inputs]
    samples = batch['data_samples']
    if isinstance(samples, dict):
        samples = {k: host(v) for k, v in samples.items()}
    else:
        for s in samples:
            s.set_field(host(s.gt_label), 'gt_label')
    return dict(inputs=inputs, data_samples=samples)


# ---------------------------------------------------------------------- #
# tiny models and batches
# ---------------------------------------------------------------------- #
def build(type_, arch=RN, seed=0, encoder=None, **kwargs):
    vit = arch is VIT
    size = (32, 16) if vit else (64, 32)
    image_encoder = dict(type='CLIPImageEncoder', arch=arch, input_size=size)
    image_encoder.update(dict(stride_size=8) if vit else dict(last_stride=1))
    image_encoder.update(encoder or {})
    cfg = dict(
        type=type_,
        num_classes=NUM_CLASSES,
        data_preprocessor=dict(type='VIReIDDataPreprocessor'),
        image_encoder=image_encoder,
        text_encoder=dict(type='CLIPTextEncoder', arch=arch),
        prompt_learner=dict(type='IDPromptLearner', embed_width=32))
    if type_ != 'CSDN':
        cfg['head'] = dict(type='BNNeckHead', pool='avg')
    cfg.update(kwargs)
    torch.manual_seed(seed)
    return MODELS.build(cfg), size


def image_batch(size, labels=(1, 4), seed=0, second_view=False, cams=True):
    """``P x K`` visible images, then the same identities infrared."""
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    for modality, cam in (('vis', 1), ('ir', 3)):
        for label in labels:
            for _ in range(K):
                inputs.append(
                    torch.from_numpy(
                        rng.randint(0, 256, (3, ) + size, dtype=np.uint8)))
                sample = DataSample().set_gt_label(label)
                meta = dict(modality=modality, sample_idx=len(samples))
                if cams:
                    meta['cam_id'] = cam
                sample.set_metainfo(meta)
                if second_view and modality == 'vis':
                    sample.set_field(
                        rng.randint(0, 256, size + (3, ), dtype=np.uint8),
                        'img_view2')
                samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def feature_batch(labels=(1, 4), dim=32, seed=0):
    """A paired feature-cache batch ``[P*K visible; P*K infrared]``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels).repeat_interleave(K)
    return dict(
        inputs=torch.randn(2 * len(y), dim, generator=g),
        data_samples=dict(
            gt_label=torch.cat([y, y]),
            modality=torch.cat(
                [torch.zeros_like(y), torch.ones_like(y)])))


def run_steps(model, stage, batches, prepare=None):
    """Enter ``stage`` and run ``train_step`` on each batch under the
    detector; return it."""
    model.switch_stage(stage)
    if prepare is not None:
        prepare(model)
    model.train()
    wrapper = OptimWrapper(
        torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=1e-3))
    detector = SyncDetector()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(device_utils, 'is_host_tensor', _is_host)
        with detector:
            for batch in batches:
                log = model.train_step(host_batch(batch), wrapper)
    assert torch.isfinite(log['loss'])
    return detector


def assert_no_sync(detector):
    found = detector.mmvireid_events()
    assert not found, 'calls in mmvireid that wait for the device:\n' + \
        '\n'.join(f'  {kind}: {op} at {osp.relpath(f, MMVIREID_DIR)}:'
                  f'{line} ({fn})' for kind, op, f, line, fn in found)


def eees_prepare(model):
    # what prepare_stage_data would encode: one feature per train sample
    model.desc_feats = torch.randn(4 * P * K, model.text_encoder.embed_dim)


def _case(type_, stages, arch=RN, encoder=None, batch=None, **kwargs):
    """``(make model, stages, image batch kwargs)``."""
    return (lambda: build(type_, arch=arch, encoder=encoder, **kwargs),
            stages, batch or {})


STEM = dict(modality_specific_stem=True)
CASES = {
    'clip_vireid_rn':
    _case('CLIPVIReID', ('prompt', 'finetune')),
    'clip_vireid_vit_sie':
    _case(
        'CLIPVIReID', ('prompt', 'finetune'),
        arch=VIT,
        encoder=dict(camera_embedding=dict(num_cameras=4))),
    'csdn':
    _case(
        'CSDN', ('prompt', 'fusion', 'finetune'),
        encoder=STEM,
        batch=dict(second_view=True),
        msel_loss=dict(type='MSELLoss', num_pos=K)),
    'clip4vireid':
    _case('CLIP4VIReID', ('tsg', 'ife', 'hsa')),
    'eees_sample':
    _case(
        'EEES', ('prompt', 'finetune'),
        encoder=STEM,
        cmsp_loss=dict(type='CMSPLoss', level='sample')),
    'eees_identity':
    _case(
        'EEES', ('finetune', ),
        arch=VIT,
        encoder=STEM,
        ese_loss=dict(type='ESELoss', cross_modal_positives=False),
        cmsp_loss=dict(type='CMSPLoss', anchor='text', level='identity')),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_train_step_never_waits_for_the_device(case):
    make, stages, batch_kwargs = CASES[case]
    model, size = make()
    for stage in stages:
        if stage in ('prompt', 'fusion', 'tsg'):
            batches = [feature_batch(seed=i) for i in range(2)]
            if stage == 'tsg':  # visible features only
                for b in batches:
                    half = len(b['inputs']) // 2
                    b['inputs'] = b['inputs'][:half]
                    b['data_samples'] = {
                        k: v[:half]
                        for k, v in b['data_samples'].items()
                    }
        else:
            batches = [
                image_batch(size, seed=i, **batch_kwargs) for i in range(2)
            ]
        prepare = eees_prepare if case.startswith('eees') else None
        detector = run_steps(model, stage, batches, prepare)
        assert_no_sync(detector)


def test_the_detector_sees_syncs():
    """The harness itself: a sync in mmvireid code is reported, a host
    computation is not."""
    from mmvireid.models.losses import label_smooth_ce_loss, supcon_loss
    feats = torch.randn(4, 8)
    labels = host(torch.tensor([0, 0, 1, 1]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(device_utils, 'is_host_tensor', _is_host)
        with SyncDetector() as ok:
            supcon_loss(feats, feats, labels, labels)
            label_smooth_ce_loss(feats, labels)
        assert_no_sync(ok)
        # device labels with device checks on: one sync per check
        device_labels = torch.tensor([0, 0, 1, 1])
        with device_utils.device_checks(), SyncDetector() as bad:
            supcon_loss(feats, feats, device_labels, device_labels)
        kinds = Counter(e[1] for e in bad.mmvireid_events())
        assert kinds['isin'] == 1 and kinds['__bool__'] == 1
        # a blocking copy of host labels is reported too
        with SyncDetector() as copy:
            labels.to('cpu') + feats[:, 0]
        assert [e[1] for e in copy.events] == ['to']


def test_what_mmengine_and_torch_do():
    """What the step does outside mmvireid, for the record: nothing that
    waits for the device either. mmengine's ``BaseModel.parse_losses``
    (``loss.mean()`` and sums) and ``OptimWrapper.update_params``
    (``backward``, ``step``, ``zero_grad``) read no device value. torch's
    unfused Adam calls ``item()`` on its step counters, which it keeps on
    the CPU (not ``capturable``), i.e. host reads. (mmengine's own
    ``ImgDataPreprocessor.forward`` indexes every image with ``x[[2, 1,
    0]]``, a blocking copy each; VIReIDDataPreprocessor replaces that path,
    see test_sync_free_equivalence.py.) Outside the step, mmengine's
    ``RuntimeInfoHook`` calls ``.item()`` on every logged loss after each
    iteration."""
    model, size = build('CLIPVIReID')
    detector = run_steps(model, 'finetune', [image_batch(size)])
    assert detector.other_events() == []


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('case', ['clip_vireid_rn', 'csdn', 'eees_sample'])
def test_cuda_sync_debug_mode(case):
    """On a GPU, torch's own sync detector: no synchronising call from
    mmvireid code during the fine-tuning step."""
    make, stages, batch_kwargs = CASES[case]
    model, size = make()
    model.cuda()
    stage = stages[-1]
    model.switch_stage(stage)
    if case.startswith('eees'):
        eees_prepare(model)
        model.desc_feats = model.desc_feats.cuda()
    model.train()
    wrapper = OptimWrapper(
        torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad],
            lr=1e-3,
            fused=True))
    batch = image_batch(size, **batch_kwargs)
    model.train_step(image_batch(size, seed=1, **batch_kwargs), wrapper)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            model.train_step(batch, wrapper)
        finally:
            torch.cuda.set_sync_debug_mode('default')
    ours = [
        f'{w.filename}:{w.lineno}: {w.message}' for w in caught
        if w.filename.startswith(MMVIREID_DIR)
    ]
    assert not ours, '\n'.join(ours)
