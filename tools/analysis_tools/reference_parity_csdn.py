# Copyright (c) mmvireid contributors. All rights reserved.
"""Record the public CSDN code's outputs for the CSDN parity test.

Imported by ``tools/analysis_tools/reference_parity.py`` (the CLI), which
calls :func:`run_csdn`::

    python tools/analysis_tools/reference_parity.py --csdn /path/to/CSDN \\
        --out-dir tests/data/parity

``csdn_root`` is a checkout of nengdong96/CSDN at :data:`REFERENCE_COMMIT`.
Its modules (``network.model``, ``network.lr``, ``core.base``,
``core.train``, ``tools.loss``, ``tools.MSEL``) run unmodified, on the CPU in
float32. Only device placement and the weight download are patched, and only
while it runs:

* ``torch.Tensor.cuda`` / ``nn.Module.cuda`` return their argument, and
  ``nn.Module.to('cuda')`` moves to the CPU (``Model.__init__`` calls
  ``clip_model.to("cuda")``, the prompt learners ``tokenize(...).cuda()``);
* ``Base._init_device`` sets ``torch.device('cpu')`` instead of ``'cuda'``
  (``nn.DataParallel`` without GPUs just calls the module, so it stays);
* ``network.clip.clip._download`` returns a file holding
  :func:`mmvireid.testing.generate_clip_state_dict` weights of :data:`ARCH`
  (``load_clip_to_cpu`` then takes its ``torch.load`` path).

Nothing is written into ``csdn_root``. ``main()`` needs the datasets, so what
it does between the reference's functions (the feature-extraction loops, the
stage loops' calls, the feature part of ``core.test.test``) is repeated here
with the reference's own calls, in its order; the arguments are ``main.py``'s
argparse defaults, read from its source, with the sizes below overridden.

**What runs.** A tiny CLIP RN (:data:`ARCH`: the RN50 layout at width 64, so
that CSDN's hard-coded 2048/1024/512 widths fit, one block per stage and one
text layer) on 64x32 images, :data:`NUM_CLASSES` identities, one batch of
``2 ids x 4 images`` per modality plus the second visible views. The
randomly initialised parts of the reference (both prompt learners, both
classifiers, the SII fusion) are overwritten with deterministic values
(:func:`init_params`), which the test loads into our model too.

1. ``prompt``: cache features of the visible and infrared images (the model
   as built: the CLIP modules in eval mode), the scheduler of
   ``_init_optimizer_stage1`` stepped through all 60 epochs, and epoch 0 run
   by ``core.train.train_stage1`` as one batch of all 8 pairs.
2. ``fusion``: cache features extracted in train mode (left there by
   stage 1), one modality per call, as ``main.py`` does, and the encoder's
   BatchNorm running statistics after it; ``train_stage2`` on the 16
   features, the fusion's dropout active.
3. ``finetune``: the fused text ``T`` of all identities (dropout active),
   ``core.train.train`` on one batch ``[vis view 1; vis view 2; ir]``, the
   same step on a float64 copy of the model (see
   :func:`_finetune_step_float64`), then the test feature as
   ``core.test.test`` computes it (eval mode, ``x1`` for visible and ``x2``
   for infrared images, each concatenated with its flip's).

**The fixture** (``torch.load(..., weights_only=True)``; parameter names are
ours, see :func:`our_name`; large tensors are :func:`mmvireid.testing.record`
summaries):

* ``arch``, ``seed``, ``weights_digest`` (of the generated CLIP weights),
  ``init_digest`` (of :func:`init_params`), ``num_classes``, ``norm`` (the
  input normalisation), ``inputs`` (uint8 images and labels,
  :func:`make_inputs`), ``loss_weights`` (the reference's
  ``--lambda1/2/3``: the ``loss_weight`` of our ``triplet_loss``,
  ``i2t_vis_loss`` and ``i2t_ir_loss``);
* per stage (``prompt``, ``fusion``, ``finetune``): ``optimizer`` (per
  trained parameter: base lr, weight decay, Adam's betas, eps, amsgrad),
  ``epoch_lrs`` (the lr of every parameter in every epoch, as the scheduler
  sets it after ``step(epoch)``), ``lr0`` (the lr of the recorded step),
  ``losses`` (every term as the reference's meter logs it; ``finetune`` adds
  ``total``), ``step`` (``grad`` and ``update = after - before`` of every
  trained tensor: ``after`` is the generated value plus ``update``);
* ``prompt``/``fusion``: ``cache`` (``vis``, ``ir`` features), ``text``
  (the step's text features), ``perm_seed``/``perm`` (the batch's
  ``randperm``; the fusion's dropout masks follow it); ``fusion``:
  ``bn_after_cache``;
* ``finetune``: ``text_seed``, ``class_text`` (``T``), ``feats`` (``gem``,
  ``proj``, ``logits``, ``logits_proj`` of the batch, in its order),
  ``step_float64``, ``bn_after_step``, ``test_feats`` (``vis``, ``ir``).

**Determinism.** :func:`run_csdn` runs on one CPU thread with fixed seeds;
two runs give the same fixture, every tensor bitwise equal (checked for
``tests/data/parity/csdn.pt``, torch 2.14 on the CPU: 639 tensors). Another
CPU or torch build may differ in the last bits, well inside the test's
tolerances.
"""
import ast
import contextlib
import copy
import importlib
import os
import os.path as osp
import sys
import tempfile
from collections import OrderedDict
from typing import Dict, List, Union

import numpy as np
import torch
import torch.nn as nn

from mmvireid.testing import (generate_clip_state_dict, record,
                              state_dict_digest, uniform_tensor)

__all__ = [
    'ARCH', 'NUM_CLASSES', 'IMG_SIZE', 'REFERENCE_COMMIT', 'run_csdn',
    'init_params', 'our_name', 'make_inputs', 'normalise'
]

#: Fixture format version; bump when the recorded items change.
VERSION = 1
#: The reference commit (nengdong96/CSDN) the fixture is made from.
REFERENCE_COMMIT = '2224959c5df9af6a58cd34a6f9ef6f6ab8177966'
#: open_clip architecture of the generated CLIP: RN50's layout at width 64
#: (layer4 2048 channels, 1024-d projection, 512-d text), as CSDN's
#: hard-coded heads, prompt learners and fusion need, with one block per
#: stage and one text layer. The reference infers a square image grid from
#: the attention-pool positional embedding, so the image size is square.
ARCH = dict(
    embed_dim=1024,
    vision_cfg=dict(image_size=64, layers=(1, 1, 1, 1), width=64),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=512, heads=8, layers=1))
#: Training identities C.
NUM_CLASSES = 4
#: (H, W) of the images: CSDN's grid (H - 16) // 16 + 1 = 4 x 2, ours
#: (layer4 stride 1) the same.
IMG_SIZE = (64, 32)
#: Images per modality (P = 2 identities x K = 4, MSEL's num_pos).
NUM_PER_MODALITY = 8
#: The data preprocessor of configs/_base_/models/clip_vireid_rn50.py
#: (ImageNet statistics, RGB, 0-255 units); the test checks ours has them.
NORM_MEAN = (123.675, 116.28, 103.53)
NORM_STD = (58.395, 57.12, 57.375)

#: Step records (gradients, updates) of tensors with more elements than this
#: are summaries (see :func:`_compact_record`).
_FULL_STEP_NUMEL = 256

# CSDN's stems are Sequential(conv1, bn1, conv2, bn2, conv3, bn3, relu,
# avgpool) of CLIP's modules; their indices hold these of ours.
_STEM = ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3')


# --------------------------------------------------------------------- #
# names, initial values, inputs (also used by the test, without CSDN)
# --------------------------------------------------------------------- #
def our_name(ref_name: str) -> str:
    """Our parameter / buffer name of a reference ``Model`` one.

    ========================================  ===============================
    CSDN (``module.`` of DataParallel off)    mmvireid ``CSDN``
    ========================================  ===============================
    ``image_encoder1.{0..5}.*``               ``image_encoder.visual.{conv1,
                                              bn1,conv2,bn2,conv3,bn3}.*``
    ``image_encoder2.{0..5}.*``               ``image_encoder.ir_stem.{...}``
    ``image_encoder.{0..3}.*``                ``image_encoder.visual.layer{1..
                                              4}.*``
    ``attnpool.*``                            ``image_encoder.visual.attnpool
                                              .*``
    ``classifier.GEM.p``                      ``head.pool.p``
    ``classifier.BN.*`` / ``classifier2.BN``  ``head.bns.0.*`` / ``.1.*``
    ``classifier.classifier.weight``          ``head.classifiers.0.weight``
    ``classifier2.classifier.weight``         ``head.classifiers.1.weight``
    ``prompt_learner1.cls_ctx``               ``prompt_learner_vis.cls_ctx``
    ``prompt_learner2.cls_ctx``               ``prompt_learner_ir.cls_ctx``
    ``attention_fusion.*``                    ``fusion.*``
    ``text_encoder.*``                        ``text_encoder.*``
    ========================================  ===============================
    """
    name = ref_name[len('module.'):] if ref_name.startswith('module.') \
        else ref_name
    head, _, rest = name.partition('.')
    if head in ('image_encoder1', 'image_encoder2'):
        index, _, leaf = rest.partition('.')
        stem = 'visual' if head == 'image_encoder1' else 'ir_stem'
        return f'image_encoder.{stem}.{_STEM[int(index)]}.{leaf}'
    if head == 'image_encoder':
        index, _, leaf = rest.partition('.')
        return f'image_encoder.visual.layer{int(index) + 1}.{leaf}'
    if head == 'attnpool':
        return f'image_encoder.visual.attnpool.{rest}'
    if head in ('classifier', 'classifier2'):
        branch = 0 if head == 'classifier' else 1
        part, _, leaf = rest.partition('.')
        if part == 'GEM':
            return f'head.pool.{leaf}'
        if part == 'BN':
            return f'head.bns.{branch}.{leaf}'
        if part == 'classifier':
            return f'head.classifiers.{branch}.{leaf}'
    if head == 'prompt_learner1':
        return f'prompt_learner_vis.{rest}'
    if head == 'prompt_learner2':
        return f'prompt_learner_ir.{rest}'
    if head == 'attention_fusion':
        return f'fusion.{rest}'
    if head == 'text_encoder':
        return name
    raise KeyError(f'no mmvireid name for the CSDN parameter {ref_name!r}')


def _uniform(rng: np.random.RandomState, shape, std: float) -> torch.Tensor:
    """Uniform with standard deviation ``std`` (see
    :func:`mmvireid.testing.uniform_tensor`)."""
    return uniform_tensor(rng, shape, std * np.sqrt(3.))


def init_params(num_classes: int = NUM_CLASSES,
                seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Deterministic values for the parts CSDN initialises randomly, keyed
    by our names, with the reference's distributions' scales.

    * ``cls_ctx`` of both prompt learners ``[C, 4, 512]``: std 0.02
      (CSDN: ``normal_(std=0.02)``);
    * both classifiers ``[C, 2048]``, ``[C, 1024]``: std 0.001;
    * the SII fusion's four ``Linear(1024, 1024)``: uniform in
      ``+-1/sqrt(1024)`` (PyTorch's default, which CSDN keeps).

    GeM's p (3) and the BatchNorms (1, 0) are deterministic in both
    implementations and are left as built.
    """
    rng = np.random.RandomState(seed)
    out = OrderedDict()
    for learner in ('prompt_learner_vis', 'prompt_learner_ir'):
        out[f'{learner}.cls_ctx'] = _uniform(rng, (num_classes, 4, 512), 0.02)
    out['head.classifiers.0.weight'] = _uniform(rng, (num_classes, 2048),
                                                0.001)
    out['head.classifiers.1.weight'] = _uniform(rng, (num_classes, 1024),
                                                0.001)
    linear_std = 1. / np.sqrt(1024) / np.sqrt(3.)  # U(+-1/sqrt(fan_in))
    for part in ('embedding_q', 'embedding_k', 'embedding_v',
                 'embedding_common'):
        out[f'fusion.{part}.0.weight'] = _uniform(rng, (1024, 1024),
                                                  linear_std)
        out[f'fusion.{part}.0.bias'] = _uniform(rng, (1024, ), linear_std)
    return out


def make_inputs(seed: int = 0) -> dict:
    """Images and labels of the run (stored in the fixture).

    Returns:
        dict: uint8 BGR images ``[8, H, W, 3]`` (as loaded by
        ``LoadImageFromFile``): ``vis`` (visible, view 1), ``vis_view2``
        (second visible view), ``ir`` (infrared); labels ``cache_labels``
        ``[8]`` of the two feature caches (all four identities, pair ``j``
        shares the identity) and ``train_labels`` ``[8]`` of the fine-tuning
        batch (2 identities x 4 images, the same for both modalities, as
        CSDN's ``IdentitySampler`` lays a batch out).
    """
    rng = np.random.RandomState(seed)
    size = (NUM_PER_MODALITY, ) + IMG_SIZE + (3, )
    images = {
        key: torch.from_numpy(rng.randint(0, 256, size, dtype=np.uint8))
        for key in ('vis', 'vis_view2', 'ir')
    }
    return dict(
        images,
        cache_labels=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
        train_labels=torch.tensor([1, 1, 1, 1, 3, 3, 3, 3]))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 BGR ``[N, H, W, 3]`` -> float RGB ``[N, 3, H, W]``,
    ``(x - mean) / std``: what our data preprocessor computes, and what the
    reference gets as its (already normalised) input."""
    x = images.permute(0, 3, 1, 2).flip(1).float()
    mean = torch.tensor(NORM_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(NORM_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------- #
# running the reference
# --------------------------------------------------------------------- #
_REFERENCE_PACKAGES = ('network', 'tools', 'core', 'data_loader')


@contextlib.contextmanager
def _reference_on_path(csdn_root: str):
    """Import CSDN's top-level packages from ``csdn_root`` (without writing
    bytecode there); afterwards drop them and restore whatever modules of
    the same names were loaded before (the other references and our repo
    have ``tools`` too)."""

    def owned(name):
        return name.split('.')[0] in _REFERENCE_PACKAGES

    saved = {k: v for k, v in sys.modules.items() if owned(k)}
    for key in saved:
        del sys.modules[key]
    sys.path.insert(0, csdn_root)
    # no __pycache__ written into the checkout
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = dont_write
        sys.path.remove(csdn_root)
        for key in [k for k in sys.modules if owned(k)]:
            del sys.modules[key]
        sys.modules.update(saved)


def _to_cpu_device(value):
    if isinstance(value, str) and value.startswith('cuda'):
        return 'cpu'
    if isinstance(value, torch.device) and value.type == 'cuda':
        return torch.device('cpu')
    return value


@contextlib.contextmanager
def _patched(obj, name, value):
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)


@contextlib.contextmanager
def _cpu_and_local_weights(base_module, clip_module, weights_path: str):
    """The only patches: device placement to the CPU, and the CLIP download
    replaced by ``weights_path``."""
    module_to = nn.Module.to

    def to_cpu(self, *args, **kwargs):
        args = tuple(_to_cpu_device(a) for a in args)
        kwargs = {k: _to_cpu_device(v) for k, v in kwargs.items()}
        return module_to(self, *args, **kwargs)

    def cpu_device(self):
        self.device = torch.device('cpu')

    with contextlib.ExitStack() as stack:
        stack.enter_context(
            _patched(torch.Tensor, 'cuda', lambda self, *a, **k: self))
        stack.enter_context(
            _patched(nn.Module, 'cuda', lambda self, *a, **k: self))
        stack.enter_context(_patched(nn.Module, 'to', to_cpu))
        stack.enter_context(
            _patched(base_module.Base, '_init_device', cpu_device))
        stack.enter_context(
            _patched(clip_module, '_download',
                     lambda url, *args, **kwargs: weights_path))
        yield


def _main_defaults(csdn_root: str, argv: List[str]):
    """``main.py``'s argparse namespace for ``argv``: the parser-building
    statements of its ``__main__`` block, run without the rest."""
    with open(osp.join(csdn_root, 'main.py')) as f:
        tree = ast.parse(f.read())
    block = next(
        node for node in tree.body if isinstance(node, ast.If)
        and 'argparse' in ast.dump(node) and '__main__' in ast.dump(node))
    stmts = [
        s for s in block.body
        if not (isinstance(s, ast.Assign) and 'parse_args' in ast.dump(s))
        and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                 and 'add_argument' not in ast.dump(s))
    ]
    scope = {}
    exec(
        compile(ast.Module(body=stmts, type_ignores=[]), 'main.py', 'exec'), {
            'argparse': __import__('argparse'),
            'ast': ast
        }, scope)
    return scope['parser'].parse_args(argv)


class _OneBatchLoaders:
    """What ``core.train.train`` reads of ``data_loader.Loader``: one
    epoch of one batch ``(rgb view 1, rgb view 2, ir, rgb pids, ir
    pids)``."""

    def __init__(self, batch):
        self.batch = batch

    def get_train_loader(self):
        return [self.batch]


class _CallRecorder:
    """Forward hook on CSDN's ``Model``: the keyword arguments and outputs
    of each call (observation only)."""

    def __init__(self, module: nn.Module):
        self.calls = []
        self.handle = module.register_forward_hook(
            self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):
        self.calls.append((dict(kwargs), output))

    def take(self):
        calls, self.calls = self.calls, []
        return calls

    def remove(self):
        self.handle.remove()


def _meter_values(result) -> Dict[str, torch.Tensor]:
    """``MultiItemAverageMeter.get_val()`` (the first item a stage loop
    returns) of one iteration -> tensors."""
    keys, values = result
    return {
        k: torch.as_tensor(np.asarray(v), dtype=torch.float32)
        for k, v in zip(keys, values)
    }


def _stage_optimizer(optimizer, names: Dict[int, str]) -> dict:
    """Per trained parameter (our name): base lr and weight decay as the
    optimizer holds them, and the optimizer's hyper-parameters."""
    params, keys = {}, []
    for group in optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            keys.append(name)
            params[name] = dict(
                lr=float(group['initial_lr']),
                weight_decay=float(group['weight_decay']),
                betas=tuple(float(b) for b in group['betas']),
                eps=float(group['eps']),
                amsgrad=bool(group['amsgrad']))
    return dict(type=type(optimizer).__name__, params=params, order=keys)


def _epoch_lrs(optimizer, scheduler, epochs: int, names, step) -> dict:
    """The learning rate of every parameter in every epoch, as ``main.py``
    steps the scheduler (``step(epoch)`` before each epoch).

    Returns:
        dict: ``names`` (ours, in the optimizer's order), ``lrs`` float64
        ``[epochs, S]`` with one column per distinct schedule, and
        ``column`` ``[len(names)]``: each parameter's column.
    """
    order = [names[id(p)] for g in optimizer.param_groups for p in g['params']]
    lrs = torch.zeros(epochs, len(order), dtype=torch.float64)
    for epoch in range(epochs):
        step(epoch)
        lrs[epoch] = torch.tensor(
            [g['lr'] for g in optimizer.param_groups for _ in g['params']],
            dtype=torch.float64)
    # parameters with the same base lr share a schedule: store it once
    unique, column = torch.unique(lrs, dim=1, return_inverse=True)
    return dict(names=order, lrs=unique, column=column)


def _compact_record(tensor: torch.Tensor) -> Union[torch.Tensor, dict]:
    """:func:`record`, with the summary already from
    :data:`_FULL_STEP_NUMEL` elements on: the optimizer step records one
    gradient and one update per trained tensor (82 in fine-tuning), which
    in full would make the fixture several times larger. The summary has
    :func:`record`'s format, so ``assert_recorded`` compares it."""
    return record(tensor, full_numel=_FULL_STEP_NUMEL)


def _step_records(optimizer, names, before) -> dict:
    """Gradient and update (``after - before``) of every tensor the step
    trained, keyed by our names."""
    grads, updates = OrderedDict(), OrderedDict()
    for group in optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            grads[name] = _compact_record(p.grad)
            updates[name] = _compact_record(p.detach() - before[name])
    return dict(grad=grads, update=updates)


def _bn_buffers(model: nn.Module, names) -> Dict[str, dict]:
    """The image encoder's BatchNorm running statistics, each buffer kind
    flattened into one vector in our name order (a summary record)."""
    out = {}
    for kind in ('running_mean', 'running_var'):
        items = sorted((names[id(b)], b) for n, b in model.named_buffers()
                       if n.endswith(kind) and id(b) in names
                       and names[id(b)].startswith('image_encoder.'))
        out[kind] = dict(
            names=[n for n, _ in items],
            value=record(torch.cat([b.reshape(-1) for _, b in items])))
    return out


def _finetune_step_float64(base, ref_train_module, class_text, batch,
                           config) -> dict:
    """``core.train.train``'s fine-tuning step on a float64 copy of the
    model (``Model.double()``; its image path and losses take any dtype, the
    text encoder is not used). The gradients of the backbone below layer3
    are ill-conditioned in this tiny model: a 1e-7 relative change of the
    input images moves some by 3e-3, and the reference's own float32
    gradients there differ from its float64 ones by up to 6e-3 of their
    largest element. In float64 ours agree to ~1e-13, so this is the step
    the test checks tightly.

    Returns:
        dict: ``grad`` and ``update`` records (float64 values stored as
        float32) of every trained tensor.
    """
    ref64 = copy.copy(base)  # the criteria and config are shared
    ref64.model = copy.deepcopy(base.model).double()
    ref64._init_optimizer_stage3()
    ref64.model_lr_scheduler_stage3.step(0)
    names = {id(p): our_name(n) for n, p in ref64.model.named_parameters()}
    before = {
        names[id(p)]: p.detach().clone()
        for p in ref64.model.parameters()
    }
    batch = tuple(t.double() if t.is_floating_point() else t for t in batch)
    ref_train_module.train(ref64, _OneBatchLoaders(batch), class_text.double(),
                           config, 0)
    return _step_records(ref64.model_optimizer_stage3, names, before)


def run_csdn(csdn_root: str, out_path: str, seed: int = 0) -> dict:
    """Run the public CSDN code and save what it computes.

    Args:
        csdn_root (str): Checkout of nengdong96/CSDN.
        out_path (str): Where to ``torch.save`` the fixture (``.pt``).
        seed (int): Seed of the weights, inputs and the reference's random
            draws. Defaults to 0.

    Returns:
        dict: The fixture (see the module docstring and
        ``tests/test_models/test_reference_parity_csdn.py``).
    """
    csdn_root = osp.abspath(csdn_root)
    threads = torch.get_num_threads()
    # One thread: reductions then sum in one fixed order, so the fixture
    # does not depend on the machine's core count.
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                _reference_on_path(csdn_root):
            weights = generate_clip_state_dict(ARCH, seed)
            weights_path = osp.join(tmp, 'clip.pt')
            torch.save(weights, weights_path)
            fixture = _run(csdn_root, weights, weights_path, seed)
    finally:
        torch.set_num_threads(threads)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    torch.save(fixture, out_path)
    return fixture


def _run(csdn_root: str, weights: dict, weights_path: str, seed: int) -> dict:
    """The reference run (see the module docstring); CSDN's packages are
    importable here."""
    ref_base = importlib.import_module('core.base')
    ref_train_module = importlib.import_module('core.train')
    # (``network.clip`` is rebound to this module by ``network``'s star
    # import of ``network.model``, so it is looked up by its full name)
    ref_clip = importlib.import_module('network.clip.clip')

    height, width = IMG_SIZE
    config = _main_defaults(csdn_root, [
        '--pid_num',
        str(NUM_CLASSES), '--img_h',
        str(height), '--img_w',
        str(width)
    ])
    inputs = make_inputs(seed)
    init = init_params(NUM_CLASSES, seed)
    fixture = dict(
        version=VERSION,
        reference=dict(repo='nengdong96/CSDN', commit=REFERENCE_COMMIT),
        arch=ARCH,
        seed=seed,
        weights_digest=state_dict_digest(weights),
        init_digest=state_dict_digest(init),
        num_classes=NUM_CLASSES,
        norm=dict(mean=NORM_MEAN, std=NORM_STD, to_rgb=True),
        inputs=inputs,
        loss_weights=dict(
            lambda1=config.lambda1,
            lambda2=config.lambda2,
            lambda3=config.lambda3),
        torch_version=str(torch.__version__))

    with _cpu_and_local_weights(ref_base, ref_clip, weights_path):
        torch.manual_seed(seed)
        base = ref_base.Base(config)
        model = base.model  # nn.DataParallel, which just calls .module
        names = {
            id(t): our_name(n)
            for n, t in list(model.named_parameters()) +
            list(model.named_buffers())
        }
        by_name = {our_name(n): p for n, p in model.named_parameters()}
        with torch.no_grad():
            for name, value in init.items():
                by_name[name].copy_(value)
        calls = _CallRecorder(model.module)

        vis, ir = normalise(inputs['vis']), normalise(inputs['ir'])
        vis2 = normalise(inputs['vis_view2'])
        cache_labels = inputs['cache_labels']

        def params_now():
            return {n: p.detach().clone() for n, p in by_name.items()}

        # ------------------------------------------------ stage 1: prompt
        # main.py: features of one sampler step, the model as built (the
        # CLIP modules in eval mode), one modality per call
        with torch.no_grad():
            vis_feats = model(x1=vis, get_image=True)
            ir_feats = model(x2=ir, get_image=True)
        calls.take()
        base._init_optimizer_stage1()
        optimizer = base.model_optimizer_stage1
        scheduler = base.model_lr_scheduler_stage1
        prompt = dict(
            cache=dict(vis=record(vis_feats), ir=record(ir_feats)),
            optimizer=_stage_optimizer(optimizer, names))
        scheduler.step(0)
        perm_seed = seed + 1
        torch.manual_seed(perm_seed)
        perm = torch.randperm(NUM_PER_MODALITY)
        torch.manual_seed(perm_seed)  # train_stage1 draws the same perm
        before = params_now()
        result = ref_train_module.train_stage1(base, NUM_PER_MODALITY, 1,
                                               NUM_PER_MODALITY, cache_labels,
                                               vis_feats, cache_labels,
                                               ir_feats)
        text = {
            'vis' if 'label1' in kw and kw['label1'] is not None else 'ir': out
            for kw, out in calls.take()
        }
        prompt.update(
            perm_seed=perm_seed,
            perm=perm,
            lr0=float(optimizer.param_groups[0]['lr']),
            text=dict(vis=record(text['vis']), ir=record(text['ir'])),
            losses=_meter_values(result[0]),
            step=_step_records(optimizer, names, before))
        prompt['epoch_lrs'] = _epoch_lrs(optimizer, scheduler,
                                         config.stage1_train_epochs, names,
                                         scheduler.step)
        fixture['prompt'] = prompt

        # ------------------------------------------------ stage 2: fusion
        # main.py extracts with the model still in train mode (set_train()
        # of stage 1): BatchNorm on the statistics of each call, and the
        # running statistics updated
        with torch.no_grad():
            vis_feats = model(x1=vis, get_image=True)
            ir_feats = model(x2=ir, get_image=True)
        calls.take()
        feats = torch.cat([vis_feats, ir_feats])
        labels = torch.cat([cache_labels, cache_labels])
        base._init_optimizer_stage2()
        optimizer = base.model_optimizer_stage2
        scheduler = base.model_lr_scheduler_stage2
        fusion = dict(
            cache=dict(vis=record(vis_feats), ir=record(ir_feats)),
            bn_after_cache=_bn_buffers(model, names),
            optimizer=_stage_optimizer(optimizer, names))
        scheduler.step(0)
        perm_seed = seed + 2
        torch.manual_seed(perm_seed)
        perm = torch.randperm(len(feats))
        # train_stage2 draws the same perm, then the fusion's dropout masks
        torch.manual_seed(perm_seed)
        before = params_now()
        result = ref_train_module.train_stage2(base, len(feats), 1, len(feats),
                                               labels, feats)
        (_, text), = calls.take()
        fusion.update(
            perm_seed=perm_seed,
            perm=perm,
            lr0=float(optimizer.param_groups[0]['lr']),
            text=record(text),
            losses=_meter_values(result[0]),
            step=_step_records(optimizer, names, before))
        fusion['epoch_lrs'] = _epoch_lrs(optimizer, scheduler,
                                         config.stage1_train_epochs, names,
                                         scheduler.step)
        fixture['fusion'] = fusion

        # ---------------------------------------------- stage 3: finetune
        # main.py: T of all identities with the model in train mode (the
        # fusion's dropout active), in batches of config.batch_size classes
        text_seed = seed + 3
        torch.manual_seed(text_seed)
        assert NUM_CLASSES <= config.batch_size  # one batch, as below
        with torch.no_grad():
            class_text = model(
                label=torch.arange(NUM_CLASSES), get_fusion_text=True)
        calls.take()
        base._init_optimizer_stage3()
        optimizer = base.model_optimizer_stage3
        scheduler = base.model_lr_scheduler_stage3
        finetune = dict(
            text_seed=text_seed,
            class_text=record(class_text),
            optimizer=_stage_optimizer(optimizer, names))
        scheduler.step(0)
        train_labels = inputs['train_labels']
        batch = (vis, vis2, ir, train_labels, train_labels)
        # the same step in float64, from a copy of this state
        calls.remove()
        finetune['step_float64'] = _finetune_step_float64(
            base, ref_train_module, class_text, batch, config)
        calls = _CallRecorder(model.module)
        before = params_now()
        result = ref_train_module.train(base, _OneBatchLoaders(batch),
                                        class_text, config, 0)
        (_, ((f, v), (logits_f, logits_v))), = calls.take()
        losses = _meter_values(result[0])
        # core/train.py's total
        total = losses['pid_loss'] + losses['pid_loss_proj'] + (
            losses['msel_loss'] + losses['msel_loss_proj']) + \
            config.lambda1 * (
                losses['triplet_loss'] + losses['triplet_loss_proj']) + \
            config.lambda2 * losses['rgb_i2t_pid_loss'] + \
            config.lambda3 * losses['ir_i2t_pid_loss']
        losses['total'] = total
        finetune.update(
            lr0=float(optimizer.param_groups[0]['lr']),
            # batch order [vis view 1; vis view 2; ir]
            feats=dict(
                gem=record(f.squeeze()),
                proj=record(v),
                logits=record(logits_f),
                logits_proj=record(logits_v)),
            losses=losses,
            step=_step_records(optimizer, names, before),
            bn_after_step=_bn_buffers(model, names))

        # core/test.py: eval mode; visible images through x1 (gallery),
        # infrared through x2 (query), each with its flip's feature
        base.set_eval()
        with torch.no_grad():
            test_vis = torch.cat(
                [model(x1=vis), model(x1=torch.flip(vis, [3]))], dim=1)
            test_ir = torch.cat([model(x2=ir),
                                 model(x2=torch.flip(ir, [3]))],
                                dim=1)
        calls.take()
        finetune['test_feats'] = dict(vis=record(test_vis), ir=record(test_ir))
        finetune['epoch_lrs'] = _epoch_lrs(optimizer, scheduler,
                                           config.total_train_epoch, names,
                                           scheduler.step)
        fixture['finetune'] = finetune
        calls.remove()
    return fixture
