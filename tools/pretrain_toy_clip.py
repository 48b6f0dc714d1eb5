# Copyright (c) mmvireid contributors. All rights reserved.
"""Pretrain a tiny toy CLIP on image-caption pairs of the synthetic world.

Real CLIP weights carry image-text meaning; a random-init tiny CLIP does not
(every person maps to nearly the same feature, so prompt learning and the
text losses have nothing to work with). This tool gives the toy world the
same start as the real one: the tiny CLIP architectures of the toy configs
are trained with CLIP's symmetric image-text contrastive loss on a corpus
of their own, and saved as a plain open_clip state dict that the toy
configs load through ``pretrained=`` like real CLIP weights::

    python tools/pretrain_toy_clip.py --arch tiny_rn \\
        --out data/toy_clip/tiny_rn.pth
    python tools/pretrain_toy_clip.py --arch tiny_vit \\
        --out data/toy_clip/tiny_vit.pth

The corpus. ``--num-ids`` people drawn by ``make_toy_vireid.make_identity``
with pids from :data:`CORPUS_PID_OFFSET` + 1 on. The ReID toy datasets use
pids 1..num_ids, so no pretraining person is in any ReID train, val or test
split. Each person is rendered in both modalities (visible cameras 1, 2, 4,
5; infrared 3, 6), and every step pairs each image with a fresh caption of
``toy_captions.caption``: several phrasings, synonyms, attribute dropout;
infrared captions never name a colour. A batch holds one image of each of
``--batch-size`` different people, so no caption is a false negative of
another image in the batch.

The architecture, input size and pixel normalisation are read from the
model base config of the toy recipes (``--arch`` picks it), so the weights
always fit the configs that load them.

The run is deterministic (one seed, deterministic algorithms; the same
command on the same machine writes the same file) and takes about a minute
per arch on two CPU cores. It ends with two checks on 200 people it did not
train on: the mean cosine between image features of different people, and
caption-to-image top-1 retrieval against chance; both are printed and
written to ``<out>.json`` beside the weights.
"""
import argparse
import io
import json
import math
import os.path as osp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from mmvireid.structures import IR, VIS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
from make_toy_vireid import make_identity, render_person  # noqa: E402
from toy_captions import caption  # noqa: E402

#: Pretraining pids start above this; the ReID toy datasets use 1..num_ids.
CORPUS_PID_OFFSET = 100000
#: ``--arch`` -> the model base config whose ``clip_arch`` is pretrained.
ARCH_CONFIGS = dict(
    tiny_rn='configs/_base_/models/clip_vireid_tiny_rn.py',
    tiny_vit='configs/_base_/models/clip_vireid_tiny_vit.py')
#: ``--arch`` -> default peak learning rate (the ViT collapses to chance at
#: the RN's 3e-3).
ARCH_LR = dict(tiny_rn=3e-3, tiny_vit=1e-3)
#: (modality, camera) of the images rendered per person.
VIEWS = ((VIS, 1), (VIS, 2), (VIS, 4), (VIS, 5), (IR, 3), (IR, 6))
VIS_VIEWS = np.array([i for i, (m, _) in enumerate(VIEWS) if m == VIS])
IR_VIEWS = np.array([i for i, (m, _) in enumerate(VIEWS) if m == IR])
#: People kept out of training for the final checks.
NUM_EVAL_IDS = 200


def arch_settings(arch: str) -> dict:
    """``clip_arch``, ``input_size`` (H, W), ``mean`` and ``std`` of the toy
    model base config of ``arch``."""
    if arch not in ARCH_CONFIGS:
        raise ValueError(f'--arch must be one of {sorted(ARCH_CONFIGS)}, '
                         f'got {arch!r}')
    cfg = Config.fromfile(osp.join(REPO_ROOT, ARCH_CONFIGS[arch]))
    preprocessor = cfg.model.data_preprocessor
    return dict(
        clip_arch=cfg.clip_arch.to_dict(),
        input_size=tuple(cfg.model.image_encoder.input_size),
        mean=list(preprocessor.mean),
        std=list(preprocessor.std))


def _render_people(args) -> list:
    """Render :data:`VIEWS` of some pids (one worker's share)."""
    pids, seed, (height, width) = args
    out = []
    for pid in pids:
        ident = make_identity(pid, seed)
        for shot, (mod, cam) in enumerate(VIEWS):
            pose = {}
            img = render_person(ident, mod, cam,
                                np.random.default_rng([seed, pid, shot, 11]),
                                (128, 64), pose)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format='JPEG', quality=90)
            pil = Image.open(buf).convert('RGB')
            if pil.size != (width, height):
                pil = pil.resize((width, height), Image.LANCZOS)
            out.append((ident, mod, pose, np.asarray(pil)))
    return out


def render_corpus(pids: Sequence[int],
                  seed: int,
                  input_size: Sequence[int],
                  workers: int = 2) -> dict:
    """Render :data:`VIEWS` of every pid; images as the ReID pipeline sees
    them (rendered at 128x64, JPEG-coded as the toy datasets store them,
    resized with Lanczos to ``input_size``). Every image has its own seed,
    so the result does not depend on ``workers``.

    Returns:
        dict: ``images`` uint8 ``[N, H, W, 3]``, ``person`` ``[N]`` (index
        into ``pids``), ``modality`` (list of 'vis' / 'ir'), ``pose`` (list
        of dicts) and ``identities``.
    """
    pids = list(pids)
    chunks = [(pids[i::workers], seed, tuple(input_size))
              for i in range(workers)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_people, chunks))
    else:
        parts = [_render_people(chunks[0])]
    # undo the round-robin split: pid i is item i // workers of part i % w
    rendered = []
    for i in range(len(pids)):
        part, j = parts[i % workers], i // workers
        rendered.extend(part[j * len(VIEWS):(j + 1) * len(VIEWS)])
    identities = [rendered[i * len(VIEWS)][0] for i in range(len(pids))]
    return dict(
        images=np.stack([r[3] for r in rendered]),
        person=np.repeat(np.arange(len(pids)), len(VIEWS)),
        modality=[r[1] for r in rendered],
        pose=[r[2] for r in rendered],
        identities=identities)


def to_tensor(images: np.ndarray, mean: Sequence[float],
              std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` RGB -> normalised float ``[N, 3, H, W]``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_loss(img: torch.Tensor, txt: torch.Tensor,
              logit_scale: torch.Tensor) -> torch.Tensor:
    r"""CLIP's symmetric contrastive loss.

    .. math::
        L = \tfrac12\big(CE(s\,\hat v \hat t^\top, I) +
            CE(s\,\hat t \hat v^\top, I)\big)

    Args:
        img (Tensor): ``[B, D]`` image features (row i pairs text row i).
        txt (Tensor): ``[B, D]`` text features.
        logit_scale (Tensor): log of the temperature inverse ``s``.
    """
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img @ txt.t()
    target = torch.arange(img.size(0))
    return (F.cross_entropy(logits, target) +
            F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def semantic_checks(encode_image, encode_text, images: torch.Tensor,
                    person: np.ndarray, texts: List[str]) -> Dict[str, float]:
    """The two numbers that say the toy CLIP has meaning.

    Args:
        encode_image (callable): ``[N, 3, H, W]`` -> ``[N, D]``.
        encode_text (callable): list of str -> ``[M, D]``.
        images (Tensor): ``[N, 3, H, W]`` normalised images.
        person (np.ndarray): ``[N]`` person of each image.
        texts (list[str]): ``N`` captions, ``texts[i]`` of image ``i``.

    Returns:
        dict: ``mean_cross_id_cosine`` (mean cosine between the image
        features of different people), ``caption_top1`` (fraction of
        captions whose most similar image shows the captioned person),
        ``chance_top1`` (that fraction for a random ranking) and
        ``top1_over_chance``.
    """
    img = torch.cat([
        F.normalize(encode_image(images[i:i + 256]).float(), dim=-1)
        for i in range(0, len(images), 256)
    ])
    txt = torch.cat([
        F.normalize(encode_text(texts[i:i + 256]).float(), dim=-1)
        for i in range(0, len(texts), 256)
    ])
    person_t = torch.as_tensor(person)
    different = person_t[:, None] != person_t[None, :]
    cosine = (img @ img.t())[different].mean().item()
    best = (txt @ img.t()).argmax(dim=1)
    top1 = (person_t[best] == person_t).float().mean().item()
    counts = np.bincount(person)
    chance = float(np.mean(counts[person] / len(person)))
    return dict(
        mean_cross_id_cosine=cosine,
        caption_top1=top1,
        chance_top1=chance,
        top1_over_chance=top1 / chance)


#: Mean L2 norms of the image and text features after calibration.
FEATURE_NORMS = (10.0, 8.0)


@torch.no_grad()
def calibrate_norms(visual: torch.nn.Module, text, images: torch.Tensor,
                    texts: List[str]) -> Dict[str, float]:
    """Scale the last projections so the mean feature norms are
    :data:`FEATURE_NORMS`.

    CLIP's loss normalises the features, so pretraining leaves their norms
    free (they drift to ~35 image / ~15 text here). The ReID recipes also
    use *unnormalised* products (CLIP-ReID's SupCon and i2t losses, as its
    code does), where such norms give logits in the hundreds and NaNs.
    Scaling a projection changes no cosine, so the pretrained meaning is
    untouched; the ReID losses see moderate logits.

    Returns:
        dict: The ``image`` and ``text`` scale factors applied.
    """
    img_norm = torch.cat([
        visual(images[i:i + 256]).norm(dim=-1)
        for i in range(0, len(images), 256)
    ]).mean().item()
    txt_norm = text.encode_texts(texts).norm(dim=-1).mean().item()
    img_scale = FEATURE_NORMS[0] / img_norm
    txt_scale = FEATURE_NORMS[1] / txt_norm
    if hasattr(visual, 'attnpool'):  # ModifiedResNet: a Linear projection
        visual.attnpool.c_proj.weight.mul_(img_scale)
        visual.attnpool.c_proj.bias.mul_(img_scale)
    else:  # VisionTransformer: the class token @ proj
        visual.proj.mul_(img_scale)
    proj = text.text_projection
    (proj.weight if isinstance(proj, torch.nn.Linear) else proj).mul_(
        txt_scale)
    if isinstance(proj, torch.nn.Linear) and proj.bias is not None:
        proj.bias.mul_(txt_scale)
    return dict(image=img_scale, text=txt_scale)


def pretrain(arch: str,
             out: str,
             num_ids: int = 1000,
             steps: int = 500,
             batch_size: int = 128,
             lr: Optional[float] = None,
             seed: int = 0,
             overwrite: bool = False,
             log_interval: int = 50,
             eval_ids: int = NUM_EVAL_IDS,
             workers: int = 2,
             threads: int = 2) -> dict:
    """Pretrain the toy CLIP ``arch`` and save it to ``out``.

    Args:
        arch (str): A key of :data:`ARCH_CONFIGS`.
        out (str): The weights file (an open_clip CLIP state dict); the
            report goes to ``out + '.json'``.
        num_ids (int): People trained on. Defaults to 1000.
        steps (int): Optimizer steps. Defaults to 500.
        batch_size (int): Image-caption pairs per step, one per person.
            Defaults to 128.
        lr (float, optional): Peak AdamW learning rate (linear warm-up over
            5 % of the steps, then cosine). Default: :data:`ARCH_LR`.
        seed (int): Seeds the corpus, the captions and the init.
        overwrite (bool): Replace an existing ``out``.
        log_interval (int): Print the loss every this many steps.
        eval_ids (int): Held-out people of the final checks.
        workers (int): Processes rendering the corpus.
        threads (int): Intra-op threads of the training. The weights are
            the same for the same thread count on the same machine; another
            count sums floats in another order and gives other weights (as
            different as two seeds). Defaults to 2, what the demo uses.

    Returns:
        dict: The run's settings, the first and last loss, the checks of
        :func:`semantic_checks` and the seconds taken (also written to
        ``<out>.json``).
    """
    if osp.exists(out) and not overwrite:
        raise FileExistsError(f'{out} exists; pass --overwrite to replace '
                              'it.')
    if num_ids < batch_size:
        raise ValueError(f'--num-ids ({num_ids}) must be >= --batch-size '
                         f'({batch_size}): a batch holds one image of each '
                         'of batch-size different people.')
    settings = arch_settings(arch)
    lr = ARCH_LR[arch] if lr is None else lr
    # Deterministic, without touching the caller's RNG or global settings.
    deterministic = torch.are_deterministic_algorithms_enabled()
    num_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _pretrain(arch, out, settings, num_ids, steps, batch_size,
                             lr, seed, log_interval, eval_ids, workers)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(num_threads)


def _pretrain(arch, out, settings, num_ids, steps, batch_size, lr, seed,
              log_interval, eval_ids, workers) -> dict:
    from mmvireid.models.text import CLIPTextEncoder
    from mmvireid.models.utils.open_clip_builder import build_open_clip
    from mmvireid.utils.fileio import atomic_write
    start = time.perf_counter()
    rng = np.random.default_rng([seed, 31337])

    pids = list(range(CORPUS_PID_OFFSET + 1,
                      CORPUS_PID_OFFSET + num_ids + eval_ids + 1))
    corpus = render_corpus(pids, seed, settings['input_size'], workers)
    images = to_tensor(corpus['images'], settings['mean'], settings['std'])
    per_person = len(VIEWS)
    num_train = num_ids * per_person
    print(f'Corpus: {num_ids} people x {per_person} images (+{eval_ids} '
          f'held-out people) rendered in {time.perf_counter() - start:.1f}s')

    model = build_open_clip(settings['clip_arch'])
    # The text tower of the ReID models (same state-dict keys as the CLIP's
    # text part), unfrozen here: it encodes only up to each batch's last
    # EOT token, which makes pretraining ~2x faster with the same maths.
    text = CLIPTextEncoder(arch=settings['clip_arch'])
    text.load_state_dict({
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith('visual.') and k != 'logit_scale'
    })
    for param in text.parameters():
        param.requires_grad = True
    visual, logit_scale = model.visual, model.logit_scale
    params = list(visual.parameters()) + [logit_scale] + list(
        text.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW([
        dict(params=decay, weight_decay=0.1),
        dict(params=no_decay, weight_decay=0.0)
    ], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * 0.5 * (1 + math.cos(math.pi * t))

    def text_batch(index: np.ndarray) -> List[str]:
        return [
            caption(corpus['identities'][corpus['person'][i]],
                    corpus['modality'][i], rng, corpus['pose'][i],
                    style='pretrain') for i in index
        ]

    visual.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(step)
        people = rng.choice(num_ids, batch_size, replace=False)
        # One modality per batch (alternating): a mixed batch is solved in
        # part by telling infrared from visible, which teaches nothing
        # about the people.
        views = VIS_VIEWS if step % 2 == 0 else IR_VIEWS
        index = people * per_person + views[rng.integers(
            len(views), size=batch_size)]
        img = visual(images[torch.from_numpy(index)])
        txt = text.encode_texts(text_batch(index))
        loss = clip_loss(img, txt, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % log_interval == 0 or step == 0:
            print(f'step {step + 1}/{steps}  loss {loss.item():.4f}  '
                  f'lr {lr_at(step):.2e}  '
                  f'{time.perf_counter() - start:.0f}s', flush=True)

    visual.eval()
    scales = calibrate_norms(visual, text, images[:num_train:7],
                             text_batch(np.arange(0, num_train, 7)))
    held_out = np.arange(num_train, len(images))
    checks = semantic_checks(visual, text.encode_texts,
                             images[torch.from_numpy(held_out)],
                             corpus['person'][held_out],
                             text_batch(held_out))
    # An open_clip CLIP state dict: visual.*, the text tower, logit_scale.
    state = {f'visual.{k}': v for k, v in visual.state_dict().items()}
    state.update(text.state_dict())
    state['logit_scale'] = logit_scale.detach()
    state = {k: v.detach().clone() for k, v in state.items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(out, buf.getvalue())
    report = dict(
        arch=arch,
        base_config=ARCH_CONFIGS[arch],
        num_ids=num_ids,
        pid_range=[pids[0], pids[num_ids - 1]],
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        threads=torch.get_num_threads(),
        feature_norm_scales=scales,
        first_loss=losses[0],
        last_loss=float(np.mean(losses[-10:])),
        held_out=checks,
        seconds=time.perf_counter() - start)
    atomic_write(out + '.json', json.dumps(report, indent=1))
    print(f'Saved {out}: loss {losses[0]:.3f} -> {report["last_loss"]:.3f}; '
          f'on {eval_ids} held-out people: mean cross-person cosine '
          f'{checks["mean_cross_id_cosine"]:.3f}, caption->image top-1 '
          f'{checks["caption_top1"]:.1%} ({checks["top1_over_chance"]:.0f}x '
          f'chance); {report["seconds"]:.0f}s')
    return report


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Pretrain the tiny toy CLIP of the toy configs on '
        'synthetic image-caption pairs (CLIP contrastive loss).')
    parser.add_argument('--arch', required=True, choices=sorted(ARCH_CONFIGS))
    parser.add_argument('--out', required=True, help='weights file (.pth)')
    parser.add_argument('--num-ids', type=int, default=1000,
                        help='people in the pretraining corpus')
    parser.add_argument('--steps', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--lr', type=float, default=None,
                        help='peak learning rate; default: 3e-3 for tiny_rn, '
                        '1e-3 for tiny_vit')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2,
                        help='intra-op threads; the weights depend on it')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    return pretrain(args.arch, args.out, num_ids=args.num_ids,
                    steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                    seed=args.seed, overwrite=args.overwrite,
                    threads=args.threads)


if __name__ == '__main__':
    main()
