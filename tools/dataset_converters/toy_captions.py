# Copyright (c) mmvireid contributors. All rights reserved.
"""Varied captions of the synthetic people of ``make_toy_vireid.py``.

One home for the toy world's language, used twice:

* ``tools/pretrain_toy_clip.py`` pairs every pretraining image with a fresh
  caption each epoch (``style='pretrain'``), so the tiny CLIP learns what
  the words mean rather than one sentence per picture;
* ``make_toy_vireid.py`` writes one description per train image
  (``style='description'``), as a captioning model would: the phrasing
  varies, attributes are sometimes left out or misread, and what the image
  shows (pose, which side the bag is on) is named.

Visible captions name colours. Infrared captions never do (the camera sees
no hue): they name shape, hair, pattern, bag and how bright a garment looks
(``dark`` / ``light``), which the infrared renderer does show. The one
exception is on purpose: ``ir_colour_noise`` puts a wrong colour word into
a chosen fraction of infrared texts, so that a method that removes
modality-specific words (EEES's CMSP) has something to remove.

What counts as a colour word is defined once, in
:mod:`mmvireid.datasets.descriptions` (``COLOUR_WORDS``, the list the
description tool's infrared filter and audit use); :data:`PALETTE` here is
only the toy world's palette, the colours it draws from.
"""
from typing import Dict, List, Optional

import numpy as np

from mmvireid.structures import IR, MODALITIES, VIS

__all__ = ['caption', 'PALETTE', 'has_colour_word', 'CAPTION_STYLES']

#: Every colour word a toy caption may contain (palette and shoe colours);
#: all of them are in mmvireid.datasets.descriptions.COLOUR_WORDS.
PALETTE = ('black', 'white', 'gray', 'grey', 'red', 'green', 'blue',
           'yellow', 'orange', 'purple', 'pink', 'brown', 'cyan')

_PERSON = dict(
    male=('man', 'man', 'male pedestrian', 'guy', 'gentleman'),
    female=('woman', 'woman', 'female pedestrian', 'lady', 'girl'))
_HAIR = dict(
    long=('long hair', 'long hair', 'shoulder-length hair', 'hair down to '
          'the shoulders'),
    short=('short hair', 'short hair', 'cropped hair', 'a short haircut'))
_TOP = ('top', 'shirt', 'jacket', 'sweater', 'upper garment')
_LOWER = ('trousers', 'pants', 'trousers', 'slacks')
_SHOES = ('shoes', 'shoes', 'sneakers', 'footwear')
_PATTERN = dict(
    plain=('plain', ''),
    striped=('striped', 'stripy', 'pinstriped'),
    checked=('checked', 'plaid', 'checkered'),
    textured=('textured', 'patterned', 'printed'))
_BAG = dict(
    backpack=('a backpack', 'a rucksack', 'a school bag'),
    handbag=('a handbag', 'a hand bag', 'a purse'))
_COLOUR_SYN = dict(gray=('gray', 'grey'))
_IR_PREFIX = ('An infrared photo of', 'A night-camera image of',
              'An IR shot of')
_VIS_PREFIX = ('A photo of', 'An image of', 'A picture of',
               'A surveillance shot of')

CAPTION_STYLES = ('pretrain', 'description', 'full')
#: Per style: probability to drop each attribute, to misread one attribute,
#: to name the pose / bag side.
_STYLE = dict(
    pretrain=dict(drop=0.3, misread=0.0, pose=0.3),
    description=dict(drop=0.15, misread=0.1, pose=0.5),
    full=dict(drop=0.0, misread=0.0, pose=0.0))


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _colour(rng: np.random.Generator, name: str) -> str:
    return _pick(rng, _COLOUR_SYN.get(name, (name, )))


def _brightness(level: float) -> Optional[str]:
    """How an infrared intensity in [0, 1] reads: a word or None."""
    if level < 0.42:
        return 'dark'
    if level > 0.6:
        return 'light'
    return None


def _article(phrase: str) -> str:
    return 'an' if phrase[:1] in 'aeiou' else 'a'


def has_colour_word(text: str) -> bool:
    """Whether ``text`` names a colour: the package's word list
    (:func:`mmvireid.datasets.descriptions.has_colour_word`), imported on
    first use so that generating captions needs numpy only."""
    from mmvireid.datasets.descriptions import has_colour_word as _has
    return _has(text)


def caption(ident,
            modality: str,
            rng: np.random.Generator,
            pose: Optional[Dict[str, float]] = None,
            style: str = 'pretrain',
            ir_colour_noise: bool = False,
            palette: Optional[List[str]] = None) -> str:
    """One caption of ``ident`` seen in ``modality``.

    Args:
        ident: A ``make_toy_vireid.Identity``.
        modality (str): ``'vis'`` or ``'ir'``.
        rng (np.random.Generator): Draws the phrasing, the dropped and
            misread attributes.
        pose (dict, optional): What ``render_person`` drew for this image
            (``side`` -1/1, ``spread`` as a fraction of the height); lets
            the caption say "walking" / "standing" and the bag side.
        style (str): ``'pretrain'`` (more dropout, always correct),
            ``'description'`` (a captioner's errors) or ``'full'`` (every
            attribute, correct: a reference caption for retrieval checks).
            Defaults to 'pretrain'.
        ir_colour_noise (bool): Infrared only: name a wrong colour for the
            top (the error CMSP is meant to purify). Defaults to False.
        palette (list[str], optional): Colour names to draw misread and
            injected colours from. Defaults to :data:`PALETTE`.

    Returns:
        str: One sentence ending in a full stop.
    """
    if modality not in MODALITIES:
        raise ValueError(f'modality must be "{VIS}" or "{IR}", got '
                         f'{modality!r}')
    if style not in _STYLE:
        raise ValueError(f'style must be one of {CAPTION_STYLES}, got '
                         f'{style!r}')
    knobs = _STYLE[style]
    palette = list(palette or [c for c in PALETTE if c != 'grey'])
    vis = modality == VIS

    gender, hair = ident.gender, ident.hair
    upper, lower, shoes = ident.upper_color, ident.lower_color, ident.shoes
    pattern = ident.upper_pattern
    # A captioner's slip: one attribute read wrong.
    if knobs['misread'] and rng.random() < knobs['misread']:
        slip = _pick(rng, ('hair', 'pattern', 'colour'))
        if slip == 'hair':
            hair = 'short' if hair == 'long' else 'long'
        elif slip == 'pattern':
            pattern = _pick(rng, [p for p in _PATTERN if p != pattern])
        elif vis:
            upper = _pick(rng, [c for c in palette if c != upper])

    def keep() -> bool:
        return rng.random() >= knobs['drop']

    person = _pick(rng, _PERSON[gender]) if keep() else 'person'
    hair_txt = _pick(rng, _HAIR[hair]) if keep() else None

    top_words = []
    if vis and keep():
        top_words.append(_colour(rng, upper))
    elif not vis:
        if ir_colour_noise:
            top_words.append(
                _colour(rng, _pick(rng, [c for c in palette if c != upper])))
        elif keep():
            top_words.append(_brightness(ident.ir_upper))
    if keep():
        top_words.append(_pick(rng, _PATTERN[pattern]))
    top_words.append(_pick(rng, _TOP))
    top = ' '.join(w for w in top_words if w)
    top = f'{_article(top)} {top}'

    lower_words = []
    if vis and keep():
        lower_words.append(_colour(rng, lower))
    elif not vis and keep():
        lower_words.append(_brightness(ident.ir_lower))
    lower_words.append(_pick(rng, _LOWER))
    lower_txt = ' '.join(w for w in lower_words if w)
    shoes_txt = (f'{_colour(rng, shoes)} {_pick(rng, _SHOES)}'
                 if vis and keep() else None)

    bag_txt = None
    if ident.bag != 'none' and keep():
        bag_txt = _pick(rng, _BAG[ident.bag])
        if pose is not None and rng.random() < knobs['pose']:
            # the renderer's `side` puts the bag on the image's left (-1)
            # or right (+1)
            bag_txt += (' on the left' if pose['side'] < 0 else
                        ' on the right')
    action = None
    if pose is not None and rng.random() < knobs['pose']:
        action = 'walking' if pose['spread'] > 0.035 else 'standing'

    worn = [top] + ([lower_txt] if keep() else []) + \
        ([shoes_txt] if shoes_txt else [])
    worn_txt = worn[0] if len(worn) == 1 else \
        ', '.join(worn[:-1]) + ' and ' + worn[-1]
    who = f'{_article(person)} {person}'
    if action:
        who = f'{who} {action}'

    template = int(rng.integers(4))
    if template == 0:
        text = _pick(rng, _VIS_PREFIX if vis else _IR_PREFIX) + f' {who}'
        if hair_txt:
            text += f' with {hair_txt}'
        text += f', wearing {worn_txt}'
        if bag_txt:
            text += f', carrying {bag_txt}'
    elif template == 1:
        text = f'{who[0].upper()}{who[1:]} in {worn_txt}'
        if hair_txt:
            text += f', {hair_txt}'
        if bag_txt:
            text += f', with {bag_txt}'
    elif template == 2:
        text = f'This {person} wears {worn_txt}'
        if hair_txt:
            text += f' and has {hair_txt}'
        if bag_txt:
            text += f'; {bag_txt} is visible'
        if not vis:
            text += ' (infrared)'
    else:
        parts = [who] + ([hair_txt] if hair_txt else []) + [worn_txt] + \
            ([bag_txt] if bag_txt else [])
        text = 'Pedestrian: ' + ', '.join(parts)
        if not vis:
            text = 'Infrared. ' + text
    return text + '.'
