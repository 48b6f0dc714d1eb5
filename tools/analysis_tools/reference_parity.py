# Copyright (c) mmvireid contributors. All rights reserved.
"""Run the reference code and write the parity fixtures of our ports.

    python tools/analysis_tools/reference_parity.py \\
        --clip-reid /path/to/CLIP-ReID --csdn /path/to/CSDN \\
        --out-dir tests/data/parity
    # regenerate in a temporary folder and compare with the committed files
    python tools/analysis_tools/reference_parity.py \\
        --clip-reid /path/to/CLIP-ReID --csdn /path/to/CSDN --check

The paths are local checkouts of the public code, at the commits named in
``REFERENCE_COMMITS`` (Syliz517/CLIP-ReID, nengdong96/CSDN). Their code is
imported and run as it is, on the CPU in float32, with fixed seeds. Only two
things are patched, and only while it runs: device calls (``.cuda()``,
``.to('cuda')``; the references hard-code CUDA) and the CLIP weight download
(it returns a local file of weights made by
:func:`mmvireid.testing.generate_clip_state_dict`). The optimisation steps
are driven here, in the order of the references' train scripts
(``train_clipreid.py`` with ``processor_clipreid_stage{1,2}.py``; CSDN's
``main.py`` with ``core/train.py``), without AMP, which the references only
enable on CUDA.

The fixtures (``tests/data/parity/*.pt``) hold the inputs, the weights the
references initialise at random (the CLIP weights are regenerated from the
seed and checked by digest), and the outputs: features, every loss term,
the learning rate of every epoch, the optimizer parameter groups (in our
parameter names) and the parameters after one optimizer step per stage.
``tests/test_models/test_reference_parity_*.py`` compare our models with
them, so CI needs no reference code. See ``docs/en/methods/clip_vireid.md``
and ``csdn.md``.

Generation is deterministic: rerunning on the same machine writes equal
fixtures (``--check`` compares every value exactly and prints the largest
difference otherwise; another CPU or torch build may differ in the last
float bits, well inside the tests' tolerances).
"""
import argparse
import contextlib
import os
import os.path as osp
import subprocess
import sys
import tempfile
from typing import Dict, Optional

import torch
import torch.nn as nn

from mmvireid.testing import (generate_clip_state_dict, record,
                              state_dict_digest, uniform_tensor)

#: The commits our ports follow (and the fixtures were made from).
REFERENCE_COMMITS = {
    'CLIP-ReID': 'eb1898b72c882875f478bebfc6d41644eece0a5d',
    'CSDN': '2224959c5df9af6a58cd34a6f9ef6f6ab8177966',
}

#: The tiny CLIPs. Their widths are the real models' (the references
#: hard-code them: 512-d prompt tokens, ViT-B-16's 768/512, RN50's
#: 2048/1024); depth and resolution are cut. Square images, because the
#: references infer a square grid from the checkpoint.
TEXT_CFG = dict(context_length=77, vocab_size=49408, width=512, heads=8,
                layers=1)
CLIP_REID_CASES = {
    'rn50': dict(
        arch=dict(
            embed_dim=1024,
            vision_cfg=dict(image_size=64, layers=(1, 1, 1, 1), width=64),
            text_cfg=TEXT_CFG),
        config='configs/person/cnn_clipreid.yml',
        name='RN50',
        overrides=[],
        sie=None,
        stride=16),
    # CLIP-ReID's ViT recipe with the README's SIE + OLP options
    'vit': dict(
        arch=dict(
            embed_dim=512,
            vision_cfg=dict(image_size=112, layers=12, width=768,
                            patch_size=16),
            text_cfg=TEXT_CFG),
        config='configs/person/vit_clipreid.yml',
        name='ViT-B-16',
        overrides=['MODEL.SIE_CAMERA', True, 'MODEL.SIE_COE', 1.0,
                   'MODEL.STRIDE_SIZE', [12, 12]],
        sie=dict(num_cameras=7, coe=1.0),
        stride=12),
}
INPUT_SIZE = (64, 32)
NUM_CLASSES = 6
# 4 identities x 2 images x 2 modalities (the reference has no modality:
# it sees the same 16 images as one batch)
BATCH_LABELS = [0, 0, 2, 2, 3, 3, 5, 5] * 2
BATCH_MODALITIES = [0] * 8 + [1] * 8
BATCH_CAMS = [1, 2, 4, 5, 1, 4, 2, 5, 3, 6, 3, 6, 6, 3, 3, 6]


# --------------------------------------------------------------------------
# running the reference code
# --------------------------------------------------------------------------
def _is_cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == 'cuda'
    return isinstance(device, str) and device.startswith('cuda')


@contextlib.contextmanager
def cpu_only():
    """Make the references' hard-coded CUDA calls no-ops on the CPU."""
    saved = (torch.Tensor.cuda, torch.Tensor.to, nn.Module.cuda,
             nn.Module.to)
    tensor_to, module_to = torch.Tensor.to, nn.Module.to

    def strip(args, kwargs):
        args = tuple(a for a in args if not _is_cuda(a))
        if _is_cuda(kwargs.get('device')):
            kwargs = dict(kwargs)
            kwargs.pop('device')
        return args, kwargs

    def tensor_to_cpu(self, *args, **kwargs):
        args, kwargs = strip(args, kwargs)
        return tensor_to(self, *args, **kwargs) if args or kwargs else self

    def module_to_cpu(self, *args, **kwargs):
        args, kwargs = strip(args, kwargs)
        return module_to(self, *args, **kwargs) if args or kwargs else self

    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.to = tensor_to_cpu
    nn.Module.to = module_to_cpu
    try:
        yield
    finally:
        (torch.Tensor.cuda, torch.Tensor.to, nn.Module.cuda,
         nn.Module.to) = saved


@contextlib.contextmanager
def reference_imports(root: str, packages):
    """Put a reference checkout first on ``sys.path`` and forget its
    top-level packages afterwards (CLIP-ReID and CSDN use generic names such
    as ``model``, ``tools`` and ``utils``)."""
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name in list(sys.modules):
            if name.split('.')[0] in packages:
                del sys.modules[name]


def reference_commit(root: str, name: str) -> str:
    """The checkout's commit; refuses another one than REFERENCE_COMMITS
    names (the fixtures document that commit)."""
    try:
        commit = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'],
                                capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f'{root} is not a git checkout of {name} (git '
                         f'rev-parse failed: {e}); clone it and check out '
                         f'{REFERENCE_COMMITS[name]}') from None
    if commit != REFERENCE_COMMITS[name]:
        raise SystemExit(f'{root} is at {commit}, but the fixtures follow '
                         f'{name} {REFERENCE_COMMITS[name]}: run `git -C '
                         f'{root} checkout {REFERENCE_COMMITS[name]}`')
    return commit


def small_weights(shapes: Dict[str, tuple], seed: int,
                  bound: float = 0.05) -> Dict[str, torch.Tensor]:
    """Deterministic values for the parameters the references initialise
    at random (prompt tokens, classifiers, SIE table): integers in
    [-127, 127] times ``bound / 127``, drawn from NumPy's ``RandomState``."""
    import numpy as np
    rng = np.random.RandomState(seed)
    return {
        name: uniform_tensor(rng, shapes[name], bound)
        for name in sorted(shapes)
    }


def image_codes(seed: int, num: int) -> torch.Tensor:
    """``[num, 3, H, W]`` int8 codes of the input images; the images are
    ``codes / 64`` (exact in float32, and 4x smaller to store)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-127, 128, (num, 3, *INPUT_SIZE), generator=gen,
                         dtype=torch.int8)


def codes_to_images(codes: torch.Tensor) -> torch.Tensor:
    """Normalised float32 images from :func:`image_codes`."""
    return codes.float() / 64


# --------------------------------------------------------------------------
# CLIP-ReID
# --------------------------------------------------------------------------
#: reference parameter name -> ours (CLIPVIReID)
def clip_reid_to_ours(name: str) -> str:
    """Map a CLIP-ReID ``build_transformer`` parameter name to ours."""
    fixed = {
        'classifier.weight': 'head.classifiers.0.weight',
        'classifier_proj.weight': 'head.classifiers.1.weight',
        'bottleneck.weight': 'head.bns.0.weight',
        'bottleneck.bias': 'head.bns.0.bias',
        'bottleneck_proj.weight': 'head.bns.1.weight',
        'bottleneck_proj.bias': 'head.bns.1.bias',
        'cv_embed': 'image_encoder.cam_embed',
        'prompt_learner.cls_ctx': 'prompt_learner.cls_ctx',
    }
    if name in fixed:
        return fixed[name]
    if name.startswith('image_encoder.'):
        return 'image_encoder.visual.' + name[len('image_encoder.'):]
    if name.startswith('text_encoder.'):
        return 'text_encoder.clip.' + name[len('text_encoder.'):]
    raise KeyError(f'no mapping for CLIP-ReID parameter {name!r}')


def _clip_reid_cfg(root: str, case: dict):
    import yaml
    from config import cfg as default_cfg
    from yacs.config import CfgNode
    cfg = default_cfg.clone()
    with open(osp.join(root, case['config'])) as f:
        recipe = yaml.safe_load(f)
    # The recipes end with an empty ``DATASETS:`` for the user to fill in
    # (yacs refuses the None); the dataset plays no role here.
    recipe = {k: v for k, v in recipe.items() if v is not None}
    cfg.merge_from_other_cfg(CfgNode(recipe))
    cfg.merge_from_list([
        'INPUT.SIZE_TRAIN', list(INPUT_SIZE), 'INPUT.SIZE_TEST',
        list(INPUT_SIZE), 'DATASETS.NAMES', 'market1501'
    ] + case['overrides'])
    cfg.freeze()
    return cfg


def _step_groups(optimizer, names: Dict[int, str]) -> Dict[str, dict]:
    """Parameter groups as ``{our name: dict(lr, weight_decay)}``."""
    out = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            out[names[id(param)]] = dict(
                lr=float(group['lr']),
                weight_decay=float(group['weight_decay']))
    return out


def run_clip_reid_case(root: str, case_name: str, seed: int,
                       weights_file: str) -> dict:
    """Run CLIP-ReID on one tiny CLIP; returns the fixture dict."""
    case = CLIP_REID_CASES[case_name]
    sd = generate_clip_state_dict(case['arch'], seed)
    torch.save(sd, weights_file)
    torch.manual_seed(seed)
    with reference_imports(root, ('config', 'model', 'loss', 'solver',
                                  'datasets', 'processor', 'utils')), \
            cpu_only():
        import model.clip.clip as ref_clip
        from loss.make_loss import make_loss
        from loss.softmax_loss import CrossEntropyLabelSmooth
        from loss.supcontrast import SupConLoss
        from loss.triplet_loss import TripletLoss
        from model.make_model_clipreid import make_model
        from solver.lr_scheduler import WarmupMultiStepLR
        from solver.make_optimizer_prompt import (make_optimizer_1stage,
                                                  make_optimizer_2stage)
        from solver.scheduler_factory import create_scheduler

        # the weight download returns our generated checkpoint
        ref_clip._download = lambda url, *args, **kwargs: weights_file
        cfg = _clip_reid_cfg(root, case)
        num_cams = case['sie']['num_cameras'] if case['sie'] else 1
        model = make_model(cfg, num_class=NUM_CLASSES, camera_num=num_cams,
                           view_num=1)
        # parameters the reference draws at random: set from our seed
        random_init = {
            'prompt_learner.cls_ctx': (NUM_CLASSES, 4, 512),
            'classifier.weight': tuple(model.classifier.weight.shape),
            'classifier_proj.weight':
            tuple(model.classifier_proj.weight.shape),
        }
        if case['sie']:
            random_init['cv_embed'] = tuple(model.cv_embed.shape)
        init = small_weights(random_init, seed + 1)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in init.items():
                params[name].copy_(value)
        names = {id(p): clip_reid_to_ours(n)
                 for n, p in model.named_parameters()}

        codes = image_codes(seed + 2, len(BATCH_LABELS))
        images = codes_to_images(codes)
        labels = torch.tensor(BATCH_LABELS)
        cams = torch.tensor(BATCH_CAMS)

        # ---- stage 1 (train_clipreid.py + processor_clipreid_stage1.py)
        loss_fn, center_criterion = make_loss(cfg, num_classes=NUM_CLASSES)
        optimizer1 = make_optimizer_1stage(cfg, model)
        scheduler1 = create_scheduler(
            optimizer1, num_epochs=cfg.SOLVER.STAGE1.MAX_EPOCHS,
            lr_min=cfg.SOLVER.STAGE1.LR_MIN,
            warmup_lr_init=cfg.SOLVER.STAGE1.WARMUP_LR_INIT,
            warmup_t=cfg.SOLVER.STAGE1.WARMUP_EPOCHS, noise_range=None)
        with torch.no_grad():
            cache = model(images, labels, get_image=True)
        stage1_lr = []
        for epoch in range(1, cfg.SOLVER.STAGE1.MAX_EPOCHS + 1):
            scheduler1.step(epoch)
            stage1_lr.append(float(optimizer1.param_groups[0]['lr']))
        scheduler1.step(1)
        stage1_groups = _step_groups(optimizer1, names)
        model.train()
        xent = SupConLoss('cuda')
        optimizer1.zero_grad()
        text = model(label=labels, get_text=True)
        loss_i2t = xent(cache, text, labels, labels)
        loss_t2i = xent(text, cache, labels, labels)
        (loss_i2t + loss_t2i).backward()
        optimizer1.step()
        stage1 = dict(
            cache_feats=record(cache),
            text_feats=record(text),
            loss_supcon_i2t=float(loss_i2t),
            loss_supcon_t2i=float(loss_t2i),
            lr=stage1_lr,
            param_groups=stage1_groups,
            after_step={'prompt_learner.cls_ctx':
                        record(model.prompt_learner.cls_ctx)})

        # ---- stage 2 (train_clipreid.py + processor_clipreid_stage2.py)
        optimizer2, _ = make_optimizer_2stage(cfg, model, center_criterion)
        scheduler2 = WarmupMultiStepLR(
            optimizer2, cfg.SOLVER.STAGE2.STEPS, cfg.SOLVER.STAGE2.GAMMA,
            cfg.SOLVER.STAGE2.WARMUP_FACTOR, cfg.SOLVER.STAGE2.WARMUP_ITERS,
            cfg.SOLVER.STAGE2.WARMUP_METHOD)
        with torch.no_grad():
            class_text = model(label=torch.arange(NUM_CLASSES),
                               get_text=True)
        # the LR of every epoch, from a twin of the scheduler (stepping
        # the real one 120 times would leave it at the last epoch)
        twin_params = [
            nn.Parameter(torch.zeros(1))
            for _ in optimizer2.param_groups
        ]
        twin_opt = torch.optim.Adam([
            dict(params=[p], lr=g['initial_lr'],
                 weight_decay=g['weight_decay'])
            for p, g in zip(twin_params, optimizer2.param_groups)
        ])
        twin = WarmupMultiStepLR(
            twin_opt, cfg.SOLVER.STAGE2.STEPS, cfg.SOLVER.STAGE2.GAMMA,
            cfg.SOLVER.STAGE2.WARMUP_FACTOR, cfg.SOLVER.STAGE2.WARMUP_ITERS,
            cfg.SOLVER.STAGE2.WARMUP_METHOD)
        stage2_lr = []
        for _ in range(cfg.SOLVER.STAGE2.MAX_EPOCHS):
            twin.step()
            stage2_lr.append(
                sorted({float(g['lr'])
                        for g in twin_opt.param_groups}))
        scheduler2.step()  # before epoch 1
        stage2_groups = _step_groups(optimizer2, names)

        model.train()
        optimizer2.zero_grad()
        cam_label = cams if cfg.MODEL.SIE_CAMERA else None
        score, feats, proj = model(x=images, label=labels,
                                   cam_label=cam_label)
        logits = proj @ class_text.t()
        total = loss_fn(score, feats, labels, cam_label, logits)
        # the terms of loss_fn, with the reference's own loss classes
        xent_ls = CrossEntropyLabelSmooth(num_classes=NUM_CLASSES)
        triplet = TripletLoss(cfg.SOLVER.MARGIN)
        terms = dict(
            id=[float(xent_ls(s, labels)) for s in score],
            triplet=[float(triplet(f, labels)[0]) for f in feats],
            i2t=float(xent_ls(logits, labels)),
            total=float(total),
            weights=dict(id=cfg.MODEL.ID_LOSS_WEIGHT,
                         triplet=cfg.MODEL.TRIPLET_LOSS_WEIGHT,
                         i2t=cfg.MODEL.I2T_LOSS_WEIGHT))
        total.backward()
        optimizer2.step()
        after = {
            names[id(p)]: record(p)
            for group in optimizer2.param_groups for p in group['params']
        }
        model.eval()
        with torch.no_grad():
            test_feat = model(images, cam_label=cam_label)
        stage2 = dict(
            class_text_feats=record(class_text),
            lr=stage2_lr,
            param_groups=stage2_groups,
            train=dict(mid=record(feats[0]), feat=record(feats[1]),
                       proj=record(proj),
                       logits=[record(s) for s in score]),
            losses=terms,
            after_step=after,
            test_feat=record(test_feat))

    return dict(
        reference=dict(
            repo='Syliz517/CLIP-ReID',
            commit=REFERENCE_COMMITS['CLIP-ReID'],
            config=case['config'],
            overrides=[str(o) for o in case['overrides']]),
        case=case_name,
        arch=case['arch'],
        seed=seed,
        weights_digest=state_dict_digest(sd),
        input_size=list(INPUT_SIZE),
        num_classes=NUM_CLASSES,
        stride=case['stride'],
        sie=case['sie'],
        stage_epochs=[cfg.SOLVER.STAGE1.MAX_EPOCHS,
                      cfg.SOLVER.STAGE2.MAX_EPOCHS],
        init={clip_reid_to_ours(k): v for k, v in init.items()},
        inputs=dict(
            image_codes=codes,
            labels=labels,
            modalities=torch.tensor(BATCH_MODALITIES),
            cams=cams),
        stage1=stage1,
        stage2=stage2)


def run_clip_reid(root: str, out_dir: str, seed: int) -> list:
    reference_commit(root, 'CLIP-ReID')
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLIP_REID_CASES:
            fixture = run_clip_reid_case(root, name, seed,
                                         osp.join(tmp, f'{name}.pth'))
            path = osp.join(out_dir, f'clip_reid_{name}.pt')
            torch.save(fixture, path)
            paths.append(path)
            print(f'wrote {path}')
    return paths


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _first_difference(a, b, where: str = '') -> Optional[str]:
    """A description of the first value where two fixtures differ."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f'{where}: tensor vs {type(b).__name__}'
        if a.shape != b.shape or a.dtype != b.dtype:
            return f'{where}: {a.dtype}{tuple(a.shape)} vs ' \
                   f'{b.dtype}{tuple(b.shape)}'
        if not torch.equal(a, b):
            diff = (a.double() - b.double()).abs().max()
            return f'{where}: max abs difference {float(diff):.3g}'
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f'{where}: keys differ: {sorted(set(a) ^ set(b))}'
        for key in a:
            found = _first_difference(a[key], b[key], f'{where}.{key}')
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f'{where}: length {len(a)} vs {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f'{where}[{i}]')
            if found:
                return found
        return None
    return None if a == b else f'{where}: {a!r} vs {b!r}'


def parse_args():
    parser = argparse.ArgumentParser(
        description='Run CLIP-ReID / CSDN reference code on tiny CLIPs and '
        'write the parity fixtures of our ports')
    parser.add_argument('--clip-reid', help='checkout of Syliz517/CLIP-ReID')
    parser.add_argument('--csdn', help='checkout of nengdong96/CSDN')
    parser.add_argument(
        '--out-dir', default='tests/data/parity',
        help='where the fixtures go (default: tests/data/parity)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of weights and inputs (default: 0)')
    parser.add_argument(
        '--check', action='store_true',
        help='write to a temporary folder and compare with --out-dir')
    return parser.parse_args()


def main():
    args = parse_args()
    if not (args.clip_reid or args.csdn):
        raise SystemExit('give --clip-reid PATH and/or --csdn PATH')
    for path in (args.clip_reid, args.csdn):
        if path and not osp.isdir(path):
            raise SystemExit(f'{path} is not a folder')
    try:
        import yacs  # noqa: F401  (CLIP-ReID reads its configs with it)
    except ImportError:
        if args.clip_reid:
            raise SystemExit('CLIP-ReID reads its configs with yacs: '
                             '`pip install yacs`') from None
    torch.set_num_threads(1)  # same summation order on every run
    out_dir = args.out_dir
    tmp = None
    if args.check:
        tmp = tempfile.TemporaryDirectory()
        out_dir = tmp.name
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if args.clip_reid:
        written += run_clip_reid(osp.abspath(args.clip_reid), out_dir,
                                 args.seed)
    if args.csdn:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from reference_parity_csdn import run_csdn
        path = osp.join(out_dir, 'csdn.pt')
        run_csdn(osp.abspath(args.csdn), path, args.seed)
        written.append(path)
    if not args.check:
        return
    failed = False
    for path in written:
        committed = osp.join(args.out_dir, osp.basename(path))
        if not osp.exists(committed):
            print(f'{committed}: missing')
            failed = True
            continue
        found = _first_difference(
            torch.load(path, weights_only=True),
            torch.load(committed, weights_only=True), osp.basename(path))
        print(found or f'{committed}: equal')
        failed = failed or bool(found)
    tmp.cleanup()
    if failed:
        raise SystemExit(1)


if __name__ == '__main__':
    main()
