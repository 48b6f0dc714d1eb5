# Copyright (c) mmvireid contributors. All rights reserved.
"""Write a small, learnable synthetic VI-ReID dataset in a real layout.

Every dataset class of mmvireid can then run end to end without a download::

    python tools/dataset_converters/make_toy_vireid.py --layout sysu \\
        --out data/toy_sysu
    python tools/dataset_converters/make_toy_vireid.py --layout regdb \\
        --out data/toy_regdb --num-ids 128 --imgs-per-cam 6
    python tools/dataset_converters/make_toy_vireid.py --layout llcm \\
        --out data/toy_llcm

or at the real datasets' scale (identity, image and gallery-folder counts
of SYSU-MM01, LLCM or RegDB; small images, several processes, a progress
bar), for scale rehearsals (tools/analysis_tools/scale_rehearsal.py)::

    python tools/dataset_converters/make_toy_vireid.py --layout sysu \\
        --scale full --out data/full_sysu

or, from Python (tests, notebooks)::

    from make_toy_vireid import make_toy_dataset
    summary = make_toy_dataset('sysu', 'data/toy_sysu', num_ids=24, seed=0)

What the images show. Each identity has a fixed body shape (height, head,
shoulders, hips, torso and leg proportions), hair length, clothing pattern
(plain, stripes, checks or a texture, with its own period and orientation),
colours and bag. Visible images render the colours. Infrared images render
only intensities, which do not follow the colours, and the same pattern and
shape, with a different contrast, stronger noise and a random per-image
brightness. So identity is learnable across modalities from shape, pattern
and accessories, while colour is a modality-specific cue (the one CMSP is
meant to suppress). Every image is jittered (position, scale, arm swing,
leg spread, mirror, background clutter, lighting, noise), so retrieval is
not trivial.

The generator also writes ``attributes.json`` (``{pid: {gender, hair,
upper_color, upper_pattern, lower_color, shoes, bag}}``, pids as unpadded
decimal strings), ``descriptions.json`` (``{relative training image path:
sentence}``) and ``toy_meta.json`` (the generation arguments). The
descriptions are one per image, as a captioning model would write them
(``toy_captions.caption``): varied phrasing and synonyms, the pose and bag
side the image shows, attributes sometimes left out (15 %) or misread
(10 % of the texts); visible texts name the colours, infrared ones never do,
unless ``--ir-colour-noise`` injects a wrong colour word into that fraction
of them (something for EEES's CMSP to remove).

``--appearance alt`` draws another world (other shades of the same colour
names, body proportions, pattern scales, hair and bag frequencies, more
noise, a weaker visible-infrared brightness link): recipes tuned on the
default world are evaluated there to tell learning from fitting.

Generation is deterministic: the same arguments give byte-identical files,
whatever the number of ``--workers``. Every image draws from its own
generator seeded by (seed, pid, modality, camera, shot), so changing one
layout does not shift the others' images.
Images are JPEG for all layouts (the real RegDB ships BMP files; the readers
take whatever path the index files list).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmvireid.structures import IR, MODALITIES, VIS

# toy_captions lives beside this file (tools/ is not a package)
if osp.dirname(osp.abspath(__file__)) not in sys.path:
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from toy_captions import caption  # noqa: E402

__all__ = [
    'make_toy_dataset', 'Identity', 'make_identity', 'render_person', 'LAYOUTS'
]

#: Colour names and their RGB values (visible images only).
PALETTE: Dict[str, Tuple[int, int, int]] = {
    'black': (28, 28, 32),
    'white': (232, 232, 228),
    'gray': (128, 128, 128),
    'red': (200, 32, 40),
    'green': (40, 150, 60),
    'blue': (40, 72, 190),
    'yellow': (230, 200, 40),
    'orange': (240, 130, 30),
    'purple': (120, 50, 160),
    'pink': (238, 140, 185),
    'brown': (120, 76, 40),
    'cyan': (40, 190, 200),
}
COLOURS = tuple(PALETTE)
SHOE_COLOURS = ('black', 'white', 'gray', 'brown', 'red', 'blue')
PATTERNS = ('plain', 'striped', 'checked', 'textured')
BAGS = ('none', 'backpack', 'handbag')
SKIN_TONES = ((236, 200, 170), (210, 165, 125), (160, 110, 75), (110, 75, 50))
HAIR_TONES = ((25, 20, 18), (70, 45, 25), (150, 110, 60), (200, 170, 110))

#: Appearance settings of the generated world. ``default`` is the toy data
#: the recipes are tuned on; ``alt`` is another world (shifted colours,
#: other body proportions, pattern scales, bag and hair frequencies, more
#: noise and a weaker visible-infrared brightness link) that recipes are
#: only *evaluated* on, to tell a recipe that learns from one that fits.
APPEARANCES = dict(
    default=dict(
        palette_shift=0.0, long_hair_p=(0.8, 0.15), bag_p=(0.5, 0.3, 0.2),
        height=(0.76, 0.9), shoulder=(0.17, 0.26), torso=(0.28, 0.36),
        leg_width=(0.05, 0.085), pattern_period=(0.035, 0.08),
        ir_luminance_link=0.6, vis_noise=0.025, ir_noise=0.06,
        ir_contrast=(0.7, 1.3)),
    alt=dict(
        palette_shift=0.18, long_hair_p=(0.7, 0.25), bag_p=(0.4, 0.35, 0.25),
        height=(0.72, 0.92), shoulder=(0.15, 0.28), torso=(0.26, 0.38),
        leg_width=(0.045, 0.09), pattern_period=(0.03, 0.1),
        ir_luminance_link=0.5, vis_noise=0.035, ir_noise=0.08,
        ir_contrast=(0.6, 1.4)),
)


def palette_rgb(colour: str, appearance: str = 'default') -> np.ndarray:
    """RGB in [0, 1] of ``colour`` in the ``appearance`` world: the
    palette, shifted towards a fixed per-colour tone by ``palette_shift``
    (same names, other shades)."""
    rgb = np.asarray(PALETTE[colour], np.float32) / 255.0
    shift = APPEARANCES[appearance]['palette_shift']
    if shift:
        tone = np.random.default_rng(
            [COLOURS.index(colour), 2024]).random(3).astype(np.float32)
        rgb = (1 - shift) * rgb + shift * tone
    return rgb


# Part ids of the label map.
BG, SKIN, HAIR, UPPER, LOWER, SHOES, BAG = range(7)
#: Modality codes of the per-image seeds (not the tensors' modality ids).
MODALITY_CODE = {VIS: 1, IR: 2}


def _article(phrase: str) -> str:
    return 'an' if phrase[:1] in 'aeiou' else 'a'


@dataclass
class Identity:
    """Everything fixed about one synthetic person.

    Lengths are fractions of the person's height in pixels; ``ir_*`` are
    infrared intensities in [0, 1], drawn independently of the colours.
    """
    pid: int
    gender: str
    hair: str
    upper_color: str
    upper_pattern: str
    pattern_color: str
    lower_color: str
    shoes: str
    bag: str
    bag_color: str
    skin_rgb: Tuple[int, int, int]
    hair_rgb: Tuple[int, int, int]
    height: float
    head: float
    shoulder: float
    hip: float
    torso: float
    leg_width: float
    pattern_period: float
    pattern_vertical: bool
    pattern_phase: float
    texture: np.ndarray
    ir_skin: float
    ir_hair: float
    ir_upper: float
    ir_lower: float
    ir_shoes: float
    ir_bag: float
    appearance: str = 'default'

    def attributes(self) -> dict:
        """The attribute record written to ``attributes.json``."""
        return dict(
            gender=self.gender,
            hair=self.hair,
            upper_color=self.upper_color,
            upper_pattern=self.upper_pattern,
            lower_color=self.lower_color,
            shoes=self.shoes,
            bag=self.bag)

    def describe(self, modality: str) -> str:
        """A sentence about the person; infrared ones name no colour."""
        person = 'woman' if self.gender == 'female' else 'man'
        pattern = '' if self.upper_pattern == 'plain' \
            else f'{self.upper_pattern} '
        carry = {
            'none': '',
            'backpack': ', carrying a backpack',
            'handbag': ', carrying a handbag'
        }[self.bag]
        if modality == VIS:
            top = f'{self.upper_color} {pattern}top'
            clothes = (f'{_article(top)} {top}, {self.lower_color} trousers '
                       f'and {self.shoes} shoes')
        else:
            top = f'{pattern}top'
            clothes = f'{_article(top)} {top}, trousers and shoes'
        return (f'A {person} with {self.hair} hair, wearing {clothes}'
                f'{carry}.')


def make_identity(pid: int,
                  seed: int,
                  appearance: str = 'default') -> Identity:
    """Draw the fixed appearance of person ``pid`` (independent per pid)
    in the ``appearance`` world (a key of :data:`APPEARANCES`)."""
    if appearance not in APPEARANCES:
        raise ValueError(f'appearance must be one of {sorted(APPEARANCES)}, '
                         f'but got "{appearance}".')
    look = APPEARANCES[appearance]
    rng = np.random.default_rng([seed, pid, 0])
    gender = 'female' if rng.random() < 0.5 else 'male'
    long_hair = rng.random() < look['long_hair_p'][0 if gender == 'female'
                                                   else 1]
    upper, pattern_colour, lower = rng.choice(len(COLOURS), 3, replace=False)
    return Identity(
        pid=pid,
        gender=gender,
        hair='long' if long_hair else 'short',
        upper_color=COLOURS[upper],
        upper_pattern=PATTERNS[rng.integers(len(PATTERNS))],
        pattern_color=COLOURS[pattern_colour],
        lower_color=COLOURS[lower],
        shoes=SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))],
        bag=BAGS[rng.choice(3, p=look['bag_p'])],
        bag_color=COLOURS[rng.integers(len(COLOURS))],
        skin_rgb=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair_rgb=HAIR_TONES[rng.integers(len(HAIR_TONES))],
        height=rng.uniform(*look['height']),
        head=rng.uniform(0.055, 0.075),
        shoulder=rng.uniform(*look['shoulder']) *
        (0.88 if gender == 'female' else 1.0),
        hip=rng.uniform(0.13, 0.21),
        torso=rng.uniform(*look['torso']),
        leg_width=rng.uniform(*look['leg_width']),
        pattern_period=rng.uniform(*look['pattern_period']),
        pattern_vertical=bool(rng.random() < 0.4),
        pattern_phase=rng.random(),
        texture=rng.random((10, 6)),
        ir_skin=rng.uniform(0.78, 0.95),
        ir_hair=rng.uniform(0.12, 0.3),
        ir_upper=_ir_intensity(COLOURS[upper], rng.random(), 0.25, 0.8,
                               look['ir_luminance_link']),
        ir_lower=_ir_intensity(COLOURS[lower], rng.random(), 0.2, 0.75,
                               look['ir_luminance_link']),
        ir_shoes=rng.uniform(0.1, 0.3),
        ir_bag=rng.uniform(0.15, 0.7),
        appearance=appearance)


def _ir_intensity(colour: str,
                  u: float,
                  low: float,
                  high: float,
                  link: float = 0.6) -> float:
    """Infrared intensity of a garment of ``colour``.

    Partly the colour's visible luminance (materials bright in daylight tend
    to reflect near-infrared too), partly an identity-specific random factor
    ``u`` in [0, 1): hue is lost, but brightness order partly survives, as
    in real near-infrared images. Without that link a tiny CLIP trained from
    scratch on the toy data barely matches across modalities. ``link`` is
    the luminance share.
    """
    r, g, b = PALETTE[colour]
    luminance = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
    return low + (high - low) * (link * luminance + (1 - link) * u)


def _segment_mask(X, Y, x0, y0, x1, y1, half_width):
    """Pixels within ``half_width`` of the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = ((X - x0) * dx + (Y - y0) * dy) / max(dx * dx + dy * dy, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return (X - x0 - t * dx)**2 + (Y - y0 - t * dy)**2 <= half_width**2


def _box(X, Y, x0, x1, y0, y1):
    return (X >= min(x0, x1)) & (X <= max(x0, x1)) & (Y >= y0) & (Y <= y1)


def _blur3(img: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur over the first two axes (anti-aliasing)."""
    pad = np.pad(
        img, ((1, 1), (1, 1)) + ((0, 0), ) * (img.ndim - 2), mode='edge')
    rows = (pad[:-2] + 2 * pad[1:-1] + pad[2:]) / 4
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4


def render_person(ident: Identity,
                  modality: str,
                  cam: int,
                  rng: np.random.Generator,
                  size: Tuple[int, int] = (128, 64),
                  pose: Optional[dict] = None) -> np.ndarray:
    """Render one image of ``ident``.

    Args:
        ident (Identity): The person.
        modality (str): ``'vis'`` (colour) or ``'ir'`` (grey intensities,
            replicated to 3 channels like SYSU-MM01's infrared JPEGs).
        cam (int): Camera number; sets the background tone.
        rng (np.random.Generator): Per-image randomness (pose, jitter,
            clutter, noise).
        size (tuple[int, int]): ``(height, width)``. Defaults to (128, 64).
        pose (dict, optional): Filled with what was drawn for this image:
            ``side`` (-1: bag and feet to the image's left, 1: right),
            ``spread`` (leg spread, fraction of the height) and ``swing``
            (arm swing, radians); captions name them.

    Returns:
        np.ndarray: uint8 image of shape (H, W, 3).
    """
    H, W = size
    Y, X = np.mgrid[0:H, 0:W].astype(np.float32)
    Y += 0.5
    X += 0.5

    # Per-image jitter: scale, position, mirror, arm swing, leg spread.
    ph = ident.height * H * rng.uniform(0.92, 1.06)
    cx = W / 2 + rng.uniform(-0.08, 0.08) * W
    top = (H - ph) / 2 + rng.uniform(-0.04, 0.04) * H
    side = -1.0 if rng.random() < 0.5 else 1.0
    r = ident.head * ph
    head_cy = top + r
    neck = top + 2.1 * r
    hip_y = neck + ident.torso * ph
    foot = top + ph
    shoe_h = 0.035 * ph
    sw, hw = ident.shoulder * ph / 2, ident.hip * ph / 2
    arm_w = 0.024 * ph
    arm_len = 0.36 * ph
    swing = rng.uniform(-0.25, 0.25)
    spread = rng.uniform(0.0, 0.07) * ph
    if pose is not None:
        pose.update(side=side, spread=spread / ph, swing=swing)
    look = APPEARANCES[ident.appearance]

    parts = np.zeros((H, W), dtype=np.uint8)

    def paint(mask, part):
        parts[mask] = part

    head = ((X - cx) / (0.82 * r))**2 + ((Y - head_cy) / r)**2 <= 1
    if ident.hair == 'long':  # hangs behind the head and the shoulders
        paint(
            _box(X, Y, cx - 0.95 * r, cx + 0.95 * r, head_cy,
                 neck + 0.12 * ph), HAIR)
    if ident.bag == 'backpack':  # sticks out behind one shoulder
        paint(
            _box(X, Y, cx + side * 0.6 * sw, cx + side * (sw + 0.06 * ph),
                 neck + 0.03 * ph, neck + 0.65 * (hip_y - neck)), BAG)
    legs = []
    for s in (-1.0, 1.0):
        x0 = cx + s * hw * 0.5
        x1 = x0 + s * spread / 2
        legs.append(x1)
        paint(
            _segment_mask(X, Y, x0, hip_y - 0.02 * ph, x1, foot - shoe_h,
                          ident.leg_width * ph / 2), LOWER)
    t = np.clip((Y - neck) / max(hip_y - neck, 1e-6), 0, 1)
    paint((Y >= neck) & (Y <= hip_y) & (np.abs(X - cx) <= sw + (hw - sw) * t),
          UPPER)
    hands = []
    for s in (-1.0, 1.0):
        x0, y0 = cx + s * (sw - arm_w * 0.5), neck + 0.02 * ph
        angle = s * 0.12 + swing * s * side
        x1, y1 = x0 + np.sin(angle) * arm_len, y0 + np.cos(angle) * arm_len
        hands.append((x1, y1))
        paint(_segment_mask(X, Y, x0, y0, x1, y1, arm_w), UPPER)
    for x1, y1 in hands:
        paint((X - x1)**2 + (Y - y1)**2 <= (1.1 * arm_w)**2, SKIN)
    paint(head, SKIN)
    paint(head & (Y < head_cy - (0.15 if ident.hair == 'short' else 0.3) * r),
          HAIR)
    for x1 in legs:
        paint(
            _box(X, Y, x1 - 0.55 * ident.leg_width * ph,
                 x1 + (0.55 + 0.4 * side) * ident.leg_width * ph,
                 foot - shoe_h, foot), SHOES)
    if ident.bag == 'handbag':
        hx, hy = hands[0] if side < 0 else hands[1]
        paint(
            _box(X, Y, hx - 0.04 * ph, hx + 0.04 * ph, hy, hy + 0.09 * ph),
            BAG)

    # Clothing pattern in body coordinates, so it moves with the person.
    u = (X - cx) / ph
    v = (Y - neck) / ph
    if ident.upper_pattern == 'striped':
        coord = u if ident.pattern_vertical else v
        pattern = (coord / ident.pattern_period + ident.pattern_phase) % 1
        pattern = (pattern < 0.5).astype(np.float32)
    elif ident.upper_pattern == 'checked':
        cells = (
            np.floor(u / ident.pattern_period) +
            np.floor(v / ident.pattern_period))
        pattern = (cells % 2).astype(np.float32)
    elif ident.upper_pattern == 'textured':
        th, tw = ident.texture.shape
        rows = np.clip((v / 0.4 * th).astype(int), 0, th - 1)
        cols = np.clip(((u + 0.2) / 0.4 * tw).astype(int), 0, tw - 1)
        pattern = (ident.texture[rows, cols] > 0.5).astype(np.float32)
    else:
        pattern = np.zeros((H, W), np.float32)
    pattern *= parts == UPPER

    # Background: a camera-dependent tone, a floor band and clutter blocks.
    cam_rng = np.random.default_rng([cam, 12345])
    clutter = []
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        clutter.append((_box(X, Y, x0, x0 + rng.uniform(6, 0.6 * W), y0,
                             y0 + rng.uniform(6, 0.4 * H)), rng.random(3)))
    floor = Y > H * rng.uniform(0.8, 0.9)
    shade = 1.0 - 0.18 * np.clip((Y - top) / ph, 0, 1)  # lit from above

    if modality == VIS:
        table = np.zeros((7, 3), np.float32)
        table[SKIN] = ident.skin_rgb
        table[HAIR] = ident.hair_rgb
        table /= 255.0
        for part, colour in ((UPPER, ident.upper_color),
                             (LOWER, ident.lower_color), (SHOES, ident.shoes),
                             (BAG, ident.bag_color)):
            table[part] = palette_rgb(colour, ident.appearance)
        img = table[parts]
        second = palette_rgb(ident.pattern_color, ident.appearance)
        img += pattern[..., None] * (second - img)
        img *= shade[..., None]
        bg = cam_rng.uniform(0.3, 0.75, 3) + rng.uniform(-0.08, 0.08, 3)
        bg_img = np.broadcast_to(bg, (H, W, 3)).copy()
        for mask, colour in clutter:
            bg_img[mask] = 0.6 * bg_img[mask] + 0.4 * colour
        bg_img[floor] *= 0.7
        img = np.where((parts == BG)[..., None], bg_img, img)
        img = _blur3(img) * rng.uniform(0.8, 1.15)
        img += rng.normal(0, look['vis_noise'], img.shape)
    else:
        table = np.array([
            0.0, ident.ir_skin, ident.ir_hair, ident.ir_upper, ident.ir_lower,
            ident.ir_shoes, ident.ir_bag
        ], np.float32)
        img = table[parts]
        # The pattern shows as an intensity change, away from the base.
        step = 0.4 if ident.ir_upper < 0.5 else -0.4
        img += pattern * step
        img *= shade
        bg_img = np.full((H, W), cam_rng.uniform(0.15, 0.35), np.float32)
        for mask, colour in clutter:
            bg_img[mask] = 0.5 * bg_img[mask] + 0.5 * colour[0]
        bg_img[floor] += 0.08
        img = np.where(parts == BG, bg_img, img)
        # Infrared: another contrast, per-image brightness, more noise.
        contrast = rng.uniform(*look['ir_contrast'])
        brightness = rng.uniform(-0.15, 0.15)
        img = (_blur3(img) - 0.5) * contrast + 0.5 + brightness
        img += rng.normal(0, look['ir_noise'], img.shape)
        img = np.repeat(img[..., None], 3, axis=2)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------- #
# Layout writers
# ---------------------------------------------------------------------- #
class _Renderer:
    """Renders, saves and describes images of one generated world.

    Every image draws from its own generators seeded by (seed, pid,
    modality, camera, shot), so images can be rendered in any order, in
    any process, with byte-identical results.
    """

    def __init__(self, out_dir: str, seed: int, size: Tuple[int, int],
                 appearance: str, ir_colour_noise: float) -> None:
        self.out_dir = out_dir
        self.seed = seed
        self.size = size
        self.appearance = appearance
        self.ir_colour_noise = ir_colour_noise
        self.identities: Dict[int, Identity] = {}

    def identity(self, pid: int) -> Identity:
        if pid not in self.identities:
            self.identities[pid] = make_identity(pid, self.seed,
                                                 self.appearance)
        return self.identities[pid]

    def render(self, job: tuple) -> Optional[str]:
        """Render and save one image; return its description (or None).

        Args:
            job (tuple): ``(rel_path, pid, modality, cam, shot, describe)``.
        """
        rel_path, pid, modality, cam, shot, describe = job
        ident = self.identity(pid)
        key = [self.seed, pid, MODALITY_CODE[modality], cam, shot]
        pose = {}
        img = render_person(ident, modality, cam,
                            np.random.default_rng(key + [1]), self.size,
                            pose)
        path = osp.join(self.out_dir, rel_path)
        os.makedirs(osp.dirname(path), exist_ok=True)
        Image.fromarray(img).save(path, quality=90)
        if not describe:
            return None
        # One text per image, as a captioner would write it: its own
        # phrasing, pose, dropped and misread attributes.
        rng = np.random.default_rng(key + [2])
        noisy = modality == IR and rng.random() < self.ir_colour_noise
        return caption(
            ident,
            modality,
            rng,
            pose,
            style='description',
            ir_colour_noise=noisy)


#: The renderer of a worker process of :func:`_render_all`.
_WORKER_RENDERER: Optional[_Renderer] = None


def _init_worker(*renderer_args) -> None:
    global _WORKER_RENDERER
    _WORKER_RENDERER = _Renderer(*renderer_args)


def _render_chunk(jobs: Sequence[tuple]) -> List[Optional[str]]:
    """Render ``jobs`` in a worker process; their descriptions in order."""
    return [_WORKER_RENDERER.render(job) for job in jobs]


def _render_all(renderer: _Renderer, jobs: Sequence[tuple], workers: int,
                progress: bool) -> List[Optional[str]]:
    """Render every job, in ``workers`` processes; descriptions in job
    order. The files do not depend on ``workers``."""
    from tqdm import tqdm
    bar = tqdm(
        total=len(jobs),
        unit='img',
        disable=not progress,
        desc='rendering',
        mininterval=1.0)
    out: List[Optional[str]] = []
    try:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                out.append(renderer.render(job))
                bar.update()
            return out
        import importlib
        import multiprocessing

        # The worker functions by their importable module (this file may
        # have been loaded under another name, or run as __main__); the
        # folder is on sys.path (see the imports above).
        module = importlib.import_module('make_toy_vireid')
        chunk = 256
        chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
        args = (renderer.out_dir, renderer.seed, renderer.size,
                renderer.appearance, renderer.ir_colour_noise)
        with multiprocessing.get_context().Pool(
                workers, initializer=module._init_worker,
                initargs=args) as pool:
            for texts in pool.imap(module._render_chunk, chunks):
                out.extend(texts)
                bar.update(len(texts))
        return out
    finally:
        bar.close()


class _Writer:
    """Plans the images of a layout, then renders them (possibly in
    parallel) and records what it wrote."""

    def __init__(self,
                 out_dir: str,
                 seed: int,
                 size: Tuple[int, int],
                 appearance: str = 'default',
                 ir_colour_noise: float = 0.0):
        self.out_dir = out_dir
        self.seed = seed
        self.size = size
        self.renderer = _Renderer(out_dir, seed, size, appearance,
                                  ir_colour_noise)
        self.counts = {VIS: 0, IR: 0}
        self.descriptions: Dict[str, str] = {}
        self.jobs: List[tuple] = []

    @property
    def identities(self) -> Dict[int, Identity]:
        return self.renderer.identities

    def identity(self, pid: int) -> Identity:
        return self.renderer.identity(pid)

    def image(self, rel_path: str, pid: int, modality: str, cam: int,
              shot: int, describe: bool) -> str:
        """Plan the image of person ``pid`` at ``out_dir/rel_path``; it is
        written by :meth:`render`."""
        self.identity(pid)  # every pid with an image is in attributes.json
        self.jobs.append((rel_path, pid, modality, cam, shot, describe))
        self.counts[modality] += 1
        return rel_path

    def render(self, workers: int = 1, progress: bool = False) -> None:
        """Write every planned image (and keep their descriptions)."""
        texts = _render_all(self.renderer, self.jobs, workers, progress)
        for job, text in zip(self.jobs, texts):
            if text is not None:
                self.descriptions[job[0]] = text
        self.jobs = []

    def write_text(self, rel_path: str, text: str) -> None:
        path = osp.join(self.out_dir, rel_path)
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)


def _split_ids(num_ids: int, seed: int,
               sizes: Sequence[int]) -> List[List[int]]:
    """Shuffle pids 1..num_ids and cut them into groups of ``sizes``
    (the last group takes the rest); each group is sorted."""
    pids = np.random.default_rng([seed, 7919]).permutation(num_ids) + 1
    out, start = [], 0
    for n in sizes:
        out.append(sorted(int(p) for p in pids[start:start + n]))
        start += n
    out.append(sorted(int(p) for p in pids[start:]))
    return out


def _cameras(rng: np.random.Generator, cams: Sequence[int],
             keep: int) -> List[int]:
    return sorted(int(c) for c in rng.choice(cams, keep, replace=False))


def _write_sysu(w: _Writer, num_ids: int, k: int) -> dict:
    num_test = max(2, round(num_ids / 3))
    num_val = max(1, num_ids // 12)
    test, val, train = _split_ids(num_ids, w.seed, [num_test, num_val])
    trainval = set(train) | set(val)
    for pid in range(1, num_ids + 1):
        rng = np.random.default_rng([w.seed, pid, 3])
        # Real SYSU ids miss some cameras; keep >= 3 visible and 1 infrared.
        vis_cams = _cameras(rng, (1, 2, 4, 5), rng.integers(3, 5))
        ir_cams = _cameras(rng, (3, 6), rng.integers(1, 3))
        for modality, cams in ((VIS, vis_cams), (IR, ir_cams)):
            for cam in cams:
                for shot in range(1, k + 1):
                    w.image(f'cam{cam}/{pid:04d}/{shot:04d}.jpg', pid,
                            modality, cam, shot, pid in trainval)
    for name, ids in (('train', train), ('val', val), ('test', test)):
        w.write_text(f'exp/{name}_id.txt', ','.join(map(str, ids)) + '\n')
    return dict(train=len(train), val=len(val), test=len(test))


def _write_regdb(w: _Writer, num_ids: int, k: int) -> dict:
    files = {}
    for pid in range(1, num_ids + 1):
        gender = w.identity(pid).gender
        for modality, folder, tag, cam in ((VIS, 'Visible', 'v', 1),
                                           (IR, 'Thermal', 't', 2)):
            files[pid, modality] = [
                w.image(f'{folder}/{pid}/{gender}_{tag}_{pid:05d}_{shot}.jpg',
                        pid, modality, cam, shot, True)
                for shot in range(1, k + 1)
            ]
    # Ten random halves, like the official splits (206 / 206 ids).
    for trial in range(1, 11):
        order = np.random.default_rng([w.seed, 4242, trial
                                       ]).permutation(num_ids) + 1
        half = num_ids // 2
        train = sorted(int(p) for p in order[:half])
        test = sorted(int(p) for p in order[half:])
        label = {pid: i for i, pid in enumerate(train)}
        for split, ids, label_of in (('train', train, label.__getitem__),
                                     ('test', test, int)):
            for modality, name in ((VIS, 'visible'), (IR, 'thermal')):
                lines = [
                    f'{rel} {label_of(pid)}' for pid in ids
                    for rel in files[pid, modality]
                ]
                w.write_text(f'idx/{split}_{name}_{trial}.txt',
                             '\n'.join(lines) + '\n')
    return dict(train=num_ids // 2, test=num_ids - num_ids // 2)


def _write_llcm(w: _Writer, num_ids: int, k: int) -> dict:
    num_test = max(2, round(num_ids / 3))
    test, train = _split_ids(num_ids, w.seed, [num_test])
    label = {pid: i for i, pid in enumerate(train)}
    lists = {VIS: [], IR: []}
    for pid in range(1, num_ids + 1):
        rng = np.random.default_rng([w.seed, pid, 5])
        is_train = pid in label
        split = 'train' if is_train else 'test'
        for modality, folder, cams in ((VIS, 'vis', range(1, 10)),
                                       (IR, 'nir', (1, 2, 4, 5, 6, 7, 8, 9))):
            for cam in _cameras(rng, tuple(cams), 3):
                for shot in range(1, k + 1):
                    rel = w.image(
                        f'{split}_{folder}/cam{cam}/{pid:04d}/'
                        f'{pid:04d}_c{cam:02d}_{shot:04d}.jpg', pid, modality,
                        cam, shot, is_train)
                    if is_train:
                        lists[modality].append(f'{rel} {label[pid]}')
    w.write_text('idx/train_vis.txt', '\n'.join(lists[VIS]) + '\n')
    w.write_text('idx/train_nir.txt', '\n'.join(lists[IR]) + '\n')
    w.write_text('idx/test_id.txt', ','.join(map(str, test)) + '\n')
    return dict(train=len(train), test=len(test))


# ---------------------------------------------------------------------- #
# Full scale: the real datasets' identity and image counts
# ---------------------------------------------------------------------- #
#: The counts ``--scale full`` reproduces. A folder is one (identity,
#: camera) folder; its images are ``per_folder`` files, a few folders one
#: file fewer so that the totals are exact.
#:
#: SYSU-MM01 (the official release, as ``prepare_sysu.py`` checks it): 296
#: train + 99 val identities (395 for training) with 22,258 visible and
#: 11,909 infrared images; 96 test identities with 3,803 infrared queries
#: (cameras 3, 6). The gallery folders of the test identities are 112 in the
#: indoor cameras 1, 2 and 189 in the outdoor cameras 4, 5, so the
#: single-shot galleries hold 301 (all) and 112 (indoor) images and the
#: multi-shot ones 3,010 and 1,120, the sizes the protocol reports. The
#: train counts fit about 20 images per folder (22,258 / 20 and 11,909 / 20
#: are within a folder of whole numbers); the number of test visible images
#: is not published: 20 per folder (6,020) is our estimate.
#:
#: LLCM (Zhang & Wang, CVPR 2023): 46,767 images of 1,064 identities; 713
#: train identities with 16,946 visible and 13,975 near-infrared images
#: (30,921) and 351 test identities with 8,680 visible and 7,166
#: near-infrared images (15,846). The test counts are the ones
#: tools/analysis_tools/benchmark_eval.py uses; the per-modality train split
#: is the commonly cited one, not checked against the paper here (its sum
#: is the 30,921 training images of the release); the numbers of (identity,
#: camera) folders (484 per test modality, as benchmark_eval.py assumes) and
#: so the images per folder are estimates.
FULL_SCALE = dict(
    sysu=dict(
        train_ids=296,
        val_ids=99,
        test_ids=96,
        train_vis=dict(images=22258, folders=1113),
        train_ir=dict(images=11909, folders=596),
        query_ir=dict(images=3803, folders=191),
        gallery_indoor=dict(images=112 * 20, folders=112),
        gallery_outdoor=dict(images=189 * 20, folders=189)),
    llcm=dict(
        train_ids=713,
        test_ids=351,
        train_vis=dict(images=16946, folders=942),
        train_ir=dict(images=13975, folders=932),
        test_vis=dict(images=8680, folders=484),
        test_ir=dict(images=7166, folders=484)),
    # RegDB: 412 identities, 10 visible and 10 thermal images each (the
    # real counts), halved into train / test per split.
    regdb=dict(num_ids=412, imgs_per_cam=10))
SCALES = ('toy', 'full')


def _assign_folders(rng: np.random.Generator, pids: Sequence[int],
                    cams: Sequence[int],
                    num_folders: int) -> Dict[int, List[int]]:
    """Cameras of every pid: one each, then ``num_folders - len(pids)``
    more (pid, camera) folders drawn at random among the unused ones."""
    if not len(pids) <= num_folders <= len(pids) * len(cams):
        raise ValueError(f'{num_folders} folders cannot cover {len(pids)} '
                         f'ids with {len(cams)} cameras each.')
    first = rng.integers(len(cams), size=len(pids))
    chosen = {pid: {cams[i]} for pid, i in zip(pids, first)}
    free = [(pid, cam) for pid in pids for cam in cams
            if cam not in chosen[pid]]
    for k in rng.choice(len(free), num_folders - len(pids), replace=False):
        pid, cam = free[int(k)]
        chosen[pid].add(cam)
    return {pid: sorted(chosen[pid]) for pid in pids}


def _folder_sizes(rng: np.random.Generator, num_folders: int,
                  images: int) -> np.ndarray:
    """``num_folders`` folder sizes summing to ``images``: all
    ``ceil(images / num_folders)``, some one fewer."""
    per = -(-images // num_folders)
    sizes = np.full(num_folders, per, dtype=np.int64)
    fewer = per * num_folders - images
    sizes[rng.choice(num_folders, fewer, replace=False)] -= 1
    return sizes


def _plan_folders(rng: np.random.Generator, pids: Sequence[int],
                  cams: Sequence[int],
                  spec: dict) -> List[Tuple[int, int, int]]:
    """``(pid, cam, num_images)`` of every folder, pids then cameras in
    order, with exactly ``spec['images']`` images in
    ``spec['folders']`` folders."""
    cams_of = _assign_folders(rng, pids, cams, spec['folders'])
    folders = [(pid, cam) for pid in pids for cam in cams_of[pid]]
    sizes = _folder_sizes(rng, len(folders), spec['images'])
    return [(pid, cam, int(n)) for (pid, cam), n in zip(folders, sizes)]


def _write_sysu_full(w: _Writer) -> dict:
    spec = FULL_SCALE['sysu']
    num_ids = spec['train_ids'] + spec['val_ids'] + spec['test_ids']
    test, val, train = _split_ids(num_ids, w.seed,
                                  [spec['test_ids'], spec['val_ids']])
    trainval = sorted(train + val)
    rng = np.random.default_rng([w.seed, 9001])
    folders = (
        _plan_folders(rng, trainval, (1, 2, 4, 5), spec['train_vis']) +
        _plan_folders(rng, trainval, (3, 6), spec['train_ir']) +
        _plan_folders(rng, test, (1, 2), spec['gallery_indoor']) +
        _plan_folders(rng, test, (4, 5), spec['gallery_outdoor']) +
        _plan_folders(rng, test, (3, 6), spec['query_ir']))
    trainval = set(trainval)
    for pid, cam, num in folders:
        modality = IR if cam in (3, 6) else VIS
        for shot in range(1, num + 1):
            w.image(f'cam{cam}/{pid:04d}/{shot:04d}.jpg', pid, modality, cam,
                    shot, pid in trainval)
    for name, ids in (('train', train), ('val', val), ('test', test)):
        w.write_text(f'exp/{name}_id.txt', ','.join(map(str, ids)) + '\n')
    return dict(train=len(train), val=len(val), test=len(test))


def _write_llcm_full(w: _Writer) -> dict:
    spec = FULL_SCALE['llcm']
    test, train = _split_ids(spec['train_ids'] + spec['test_ids'], w.seed,
                             [spec['test_ids']])
    label = {pid: i for i, pid in enumerate(train)}
    rng = np.random.default_rng([w.seed, 9002])
    cams = {VIS: tuple(range(1, 10)), IR: (1, 2, 4, 5, 6, 7, 8, 9)}
    folder_names = {VIS: 'vis', IR: 'nir'}
    lists = {VIS: [], IR: []}
    for split, pids in (('train', train), ('test', test)):
        for modality in MODALITIES:
            plan = _plan_folders(rng, pids, cams[modality],
                                 spec[f'{split}_{modality}'])
            for pid, cam, num in plan:
                for shot in range(1, num + 1):
                    rel = w.image(
                        f'{split}_{folder_names[modality]}/cam{cam}/'
                        f'{pid:04d}/{pid:04d}_c{cam:02d}_{shot:04d}.jpg', pid,
                        modality, cam, shot, split == 'train')
                    if split == 'train':
                        lists[modality].append(f'{rel} {label[pid]}')
    w.write_text('idx/train_vis.txt', '\n'.join(lists[VIS]) + '\n')
    w.write_text('idx/train_nir.txt', '\n'.join(lists[IR]) + '\n')
    w.write_text('idx/test_id.txt', ','.join(map(str, test)) + '\n')
    return dict(train=len(train), test=len(test))


def _write_regdb_full(w: _Writer) -> dict:
    spec = FULL_SCALE['regdb']
    return _write_regdb(w, spec['num_ids'], spec['imgs_per_cam'])


LAYOUTS = dict(sysu=_write_sysu, regdb=_write_regdb, llcm=_write_llcm)
FULL_LAYOUTS = dict(
    sysu=_write_sysu_full, regdb=_write_regdb_full, llcm=_write_llcm_full)
META_FILE = 'toy_meta.json'


def make_toy_dataset(layout: str,
                     out_dir: str,
                     num_ids: Optional[int] = None,
                     seed: int = 0,
                     imgs_per_cam: Optional[int] = None,
                     img_size: Optional[Tuple[int, int]] = None,
                     appearance: str = 'default',
                     ir_colour_noise: float = 0.0,
                     overwrite: bool = False,
                     verbose: bool = True,
                     scale: str = 'toy',
                     workers: Optional[int] = None) -> dict:
    """Write a toy dataset in the on-disk layout of ``layout``.

    Args:
        layout (str): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
        out_dir (str): Output folder; it must be empty or absent, unless
            ``overwrite`` and it holds a previous toy dataset.
        num_ids (int, optional): Number of identities, at least 4. About a
            third are test ids (sysu, llcm; half for each RegDB split).
            Defaults to 24 (``scale='toy'``; the full scale sets it).
        seed (int): Seed of everything drawn. Defaults to 0.
        imgs_per_cam (int, optional): Images per (id, camera) folder (per
            modality for RegDB). A SYSU multi-shot gallery needs 10.
            Defaults to 4 (``scale='toy'``; the full scale sets it).
        img_size (tuple[int, int], optional): ``(height, width)``. Defaults
            to (128, 64) for the toy scale and (64, 32) (the toy configs'
            input) for the full scale.
        appearance (str): The world's look, a key of :data:`APPEARANCES`:
            ``'default'`` (the toy recipes are tuned on it) or ``'alt'``
            (held out: recipes are only evaluated on it). Defaults to
            'default'.
        ir_colour_noise (float): Fraction of infrared descriptions given a
            wrong colour word (infrared texts are colour-free otherwise).
            Defaults to 0.
        overwrite (bool): Replace a previous toy dataset in ``out_dir``.
            Defaults to False.
        verbose (bool): Print a summary (and, at the full scale, a progress
            bar). Defaults to True.
        scale (str): ``'toy'`` (``num_ids`` people, ``imgs_per_cam`` images
            per folder) or ``'full'``: the identity, image and gallery
            folder counts of the real dataset (:data:`FULL_SCALE`).
            Defaults to 'toy'.
        workers (int, optional): Processes rendering the images; the files
            are the same for any number. Defaults to 1 for the toy scale
            and ``min(8, cpu count)`` for the full scale.

    Returns:
        dict: ``layout``, ``scale``, ``out_dir``, ``ids`` (per split),
        ``images`` (per modality) and ``seconds``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {sorted(LAYOUTS)}, but got '
                         f'"{layout}".')
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {SCALES}, but got "{scale}".')
    full = scale == 'full'
    if full and (num_ids is not None or imgs_per_cam is not None):
        raise ValueError(
            'num_ids and imgs_per_cam are set by scale="full" (the real '
            f'counts of {layout}); leave them out.')
    num_ids = 24 if num_ids is None else num_ids
    imgs_per_cam = 4 if imgs_per_cam is None else imgs_per_cam
    if img_size is None:
        img_size = (64, 32) if full else (128, 64)
    if workers is None:
        workers = min(8, os.cpu_count() or 1) if full else 1
    if num_ids < 4:
        raise ValueError(f'num_ids must be >= 4, but got {num_ids}.')
    if imgs_per_cam < 1:
        raise ValueError(f'imgs_per_cam must be >= 1, but got {imgs_per_cam}.')
    if appearance not in APPEARANCES:
        raise ValueError(f'appearance must be one of {sorted(APPEARANCES)}, '
                         f'but got "{appearance}".')
    if not 0.0 <= ir_colour_noise <= 1.0:
        raise ValueError('ir_colour_noise must be in [0, 1], but got '
                         f'{ir_colour_noise}.')
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(
                f'"{out_dir}" is not empty; choose another folder, or pass '
                '--overwrite to replace a toy dataset written there.')
        if not osp.isfile(osp.join(out_dir, META_FILE)):
            raise FileExistsError(
                f'"{out_dir}" is not empty and holds no {META_FILE}; it is '
                'not a toy dataset, so it will not be deleted.')
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    start = time.perf_counter()
    writer = _Writer(out_dir, seed, tuple(img_size), appearance,
                     ir_colour_noise)
    if full:
        ids = FULL_LAYOUTS[layout](writer)
        num_ids = len(writer.identities)
    else:
        ids = LAYOUTS[layout](writer, num_ids, imgs_per_cam)
    writer.render(workers, progress=verbose and full)
    attributes = {
        str(pid): writer.identities[pid].attributes()
        for pid in sorted(writer.identities)
    }
    for name, table in (('attributes.json', attributes),
                        ('descriptions.json', writer.descriptions)):
        writer.write_text(name, json.dumps(table, indent=1, sort_keys=True))
    if full:
        # (the toy meta keeps its keys: the toy data stays byte-identical)
        meta = dict(
            layout=layout,
            scale=scale,
            num_ids=num_ids,
            seed=seed,
            img_size=list(img_size),
            appearance=appearance,
            ir_colour_noise=ir_colour_noise)
    else:
        meta = dict(
            layout=layout,
            num_ids=num_ids,
            seed=seed,
            imgs_per_cam=imgs_per_cam,
            img_size=list(img_size),
            appearance=appearance,
            ir_colour_noise=ir_colour_noise)
    writer.write_text(META_FILE, json.dumps(meta, indent=1))
    summary = dict(
        layout=layout,
        scale=scale,
        out_dir=out_dir,
        ids=ids,
        images=dict(writer.counts),
        seconds=time.perf_counter() - start)
    if verbose:
        id_text = ', '.join(f'{k} {v}' for k, v in ids.items())
        what = 'Toy' if not full else 'Full-scale synthetic'
        print(f'{what} {layout} dataset written to {out_dir} in '
              f'{summary["seconds"]:.1f}s: {num_ids} ids ({id_text}); '
              f'{writer.counts[VIS]} visible and {writer.counts[IR]} '
              f'infrared images of {img_size[0]}x{img_size[1]} (HxW); '
              f'{len(writer.descriptions)} descriptions.')
    return summary


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small synthetic VI-ReID dataset in the on-disk '
        'layout of SYSU-MM01, RegDB or LLCM.')
    parser.add_argument('--layout', required=True, choices=sorted(LAYOUTS))
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--scale',
        default='toy',
        choices=SCALES,
        help='"toy": --num-ids people, --imgs-per-cam images per folder; '
        '"full": the identity and image counts of the real dataset (SYSU-MM01 '
        '395 train / 96 test ids, 34,167 train images, 3,803 queries; LLCM '
        '713 / 351 ids, 46,767 images; RegDB 412 ids x 10 x 2)')
    parser.add_argument(
        '--num-ids',
        type=int,
        help='number of identities (toy scale; '
        'default 24)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--imgs-per-cam',
        type=int,
        help='images per (id, camera) folder (toy scale; default 4); 10 for '
        'a SYSU multi-shot gallery')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='image height and width (default 128 64 for the toy scale, '
        '64 32 for the full scale)')
    parser.add_argument(
        '--appearance',
        default='default',
        choices=sorted(APPEARANCES),
        help='the look of the world: "default" (the toy recipes are tuned '
        'on it) or "alt" (held out, for evaluation only)')
    parser.add_argument(
        '--ir-colour-noise',
        type=float,
        default=0.0,
        help='fraction of infrared descriptions given a wrong colour word')
    parser.add_argument(
        '--workers',
        type=int,
        help='processes rendering images (default 1 for the toy scale, '
        'min(8, CPUs) for the full scale); the files do not depend on it')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace a toy dataset already written to --out')
    args = parser.parse_args(argv)
    if args.scale == 'full' and (args.num_ids is not None
                                 or args.imgs_per_cam is not None):
        parser.error('--num-ids and --imgs-per-cam are set by --scale full')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    make_toy_dataset(
        args.layout,
        args.out,
        num_ids=args.num_ids,
        seed=args.seed,
        imgs_per_cam=args.imgs_per_cam,
        img_size=None if args.img_size is None else tuple(args.img_size),
        appearance=args.appearance,
        ir_colour_noise=args.ir_colour_noise,
        overwrite=args.overwrite,
        scale=args.scale,
        workers=args.workers)


if __name__ == '__main__':
    main()
