# Copyright (c) mmvireid contributors. All rights reserved.
"""The test protocols: their names, options and the gallery keep rule.

A protocol (``'sysu'``, ``'regdb'``, ``'llcm'``) fixes which retrieval
directions exist, how each trial's gallery is drawn (see
:mod:`~mmvireid.structures.split`) and which gallery items a query may never
be matched with. That last rule is stated once, here, as *drop keys*
(:func:`protocol_drop_keys`); the dense mask of inference and ranking images
(:func:`protocol_keep_mask`) and the block-wise evaluation
(:mod:`mmvireid.evaluation.functional.vireid_eval`) are both computed from
those keys. ``docs/en/protocols.md`` (section 1) describes the rules.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .modality import DIRECTIONS, IR2VIS, VIS2IR, direction_modalities

__all__ = [
    'SYSU', 'REGDB', 'LLCM', 'PROTOCOLS', 'DATASET_PROTOCOLS',
    'PROTOCOL_DIRECTIONS', 'GALLERY_MODES', 'MULTI_SHOT_NUM',
    'LLCM_VIS2IR_MODES', 'check_protocol', 'check_protocol_options',
    'protocol_drop_keys', 'protocol_keep_mask'
]

SYSU: str = 'sysu'
REGDB: str = 'regdb'
LLCM: str = 'llcm'
PROTOCOLS: Tuple[str, str, str] = (SYSU, REGDB, LLCM)

#: ``dataset_name`` (the datasets' metainfo) -> the protocol it is tested with
DATASET_PROTOCOLS: Dict[str, str] = dict(
    sysu_mm01=SYSU, regdb=REGDB, llcm=LLCM)

#: the directions each protocol defines, the main (reported) one first.
#: SYSU-MM01 has infrared queries and a visible gallery only.
PROTOCOL_DIRECTIONS: Dict[str, Tuple[str, ...]] = {
    SYSU: (IR2VIS, ),
    REGDB: (VIS2IR, IR2VIS),
    LLCM: (VIS2IR, IR2VIS),
}

#: gallery draws of a trial: one image per (id, camera) folder, or several
#: (``'multi'``, SYSU-MM01 only)
GALLERY_MODES: Tuple[str, str] = ('single', 'multi')
#: images drawn per (id, camera) folder in a multi-shot gallery
MULTI_SHOT_NUM: int = 10
#: the two readings of LLCM's visible-to-infrared test: all visible queries
#: against a drawn infrared gallery (``'symmetric'``), or DEEN's drawn
#: infrared rows ranked against every visible image (``'deen'``)
LLCM_VIS2IR_MODES: Tuple[str, str] = ('symmetric', 'deen')


def check_protocol(protocol: str, owner: str = '') -> str:
    """Return ``protocol`` if it is a protocol name, else raise.

    Args:
        protocol (str): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
        owner (str): Who checks (a class name), to start the message.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'{_prefix(owner)}protocol must be one of '
                         f'{PROTOCOLS}, got {protocol!r}.')
    return protocol


def check_protocol_options(protocol: str,
                           directions: Optional[Sequence[str]] = None,
                           gallery_mode: str = 'single',
                           llcm_vis2ir_mode: str = 'symmetric',
                           owner: str = '') -> Tuple[str, ...]:
    """Check a protocol's test options together; return the directions.

    Args:
        protocol (str): The protocol name.
        directions (str | Sequence[str], optional): Directions to test, in
            report order. None gives :data:`PROTOCOL_DIRECTIONS`.
        gallery_mode (str): One of :data:`GALLERY_MODES`.
        llcm_vis2ir_mode (str): One of :data:`LLCM_VIS2IR_MODES`.
        owner (str): Who checks (a class name), to start the messages.

    Returns:
        tuple[str]: The directions, main first.
    """
    check_protocol(protocol, owner)
    start = _prefix(owner)
    if gallery_mode not in GALLERY_MODES:
        raise ValueError(f'{start}gallery_mode must be one of '
                         f'{GALLERY_MODES}, got {gallery_mode!r}.')
    if gallery_mode == 'multi' and protocol != SYSU:
        raise ValueError(f"{start}gallery_mode='multi' exists only for "
                         f"protocol={SYSU!r} (CSDN's multi-shot SYSU "
                         f'gallery), got protocol={protocol!r}.')
    if llcm_vis2ir_mode not in LLCM_VIS2IR_MODES:
        raise ValueError(f'{start}llcm_vis2ir_mode must be one of '
                         f'{LLCM_VIS2IR_MODES}, got {llcm_vis2ir_mode!r}.')
    allowed = PROTOCOL_DIRECTIONS[protocol]
    if directions is None:
        return allowed
    if isinstance(directions, str):
        directions = (directions, )
    directions = tuple(directions)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions or len(set(directions)) != len(directions):
        raise ValueError(f'{start}directions must be distinct values of '
                         f'{tuple(DIRECTIONS)}, got {directions!r}.')
    if not set(directions) <= set(allowed):
        query, gallery = direction_modalities(allowed[0])
        raise ValueError(f'{start}protocol={protocol!r} has '
                         f'{query.upper()} queries and a {gallery.upper()} '
                         f'gallery only; directions must be {allowed}, got '
                         f'{directions!r}.')
    return directions


def protocol_drop_keys(
    protocol: str,
    q_pids: Sequence[Optional[int]],
    q_cams: Optional[Sequence[Optional[int]]],
    g_pids: Sequence[Optional[int]],
    g_cams: Optional[Sequence[Optional[int]]],
) -> Tuple[np.ndarray, np.ndarray, int]:
    """The protocol's keep rule, as keys: **a gallery item is dropped for a
    query exactly when the item's key equals the query's key.**

    * ``'sysu'``: a query from camera 3 drops every gallery item of camera
      2, whatever its identity (keys: 1 for camera-2 items and camera-3
      queries; other items 0, other queries none);
    * ``'llcm'``: a query drops the gallery items with its person id **and**
      its camera number (key: the (person id, camera) pair);
    * ``'regdb'``: nothing is dropped.

    Keys are dense: a rule table indexed by key stays small, and
    ``label << bits | key`` codes stay narrow (evaluation's block-wise
    scoring works on such codes).

    Args:
        protocol (str): ``'sysu'``, ``'llcm'`` or ``'regdb'``.
        q_pids (Sequence[int]): ``(Q,)`` query person ids (only LLCM reads
            them; may be None elsewhere).
        q_cams (Sequence[int], optional): ``(Q,)`` query camera numbers
            (not read by RegDB).
        g_pids (Sequence[int]): ``(G,)`` gallery person ids.
        g_cams (Sequence[int], optional): ``(G,)`` gallery camera numbers.

    Returns:
        tuple: ``(q_keys, g_keys, num_keys)``: ``(Q,)`` int64 query keys in
        ``-1..num_keys-1`` (-1 drops nothing), ``(G,)`` int64 gallery keys
        in ``0..num_keys-1``, and ``num_keys >= 1``.

    Raises:
        ValueError: An unknown protocol, or a person id / camera the rule
            needs is None.
    """
    check_protocol(protocol)
    num_q, num_g = len(q_pids), len(g_pids)
    if protocol == REGDB:
        return (np.full(num_q, -1,
                        dtype=np.int64), np.zeros(num_g, dtype=np.int64), 1)
    q_cam = _column(q_cams, 'camera ids', protocol)
    g_cam = _column(g_cams, 'camera ids', protocol)
    if protocol == SYSU:
        q_keys = np.where(q_cam == 3, 1, -1).astype(np.int64)
        return q_keys, (g_cam == 2).astype(np.int64), 2
    q_pid = _column(q_pids, 'person ids', protocol)
    g_pid = _column(g_pids, 'person ids', protocol)
    pids, g_p = np.unique(g_pid, return_inverse=True)
    cams, g_c = np.unique(g_cam, return_inverse=True)
    g_pair = g_p.reshape(-1) * cams.size + g_c.reshape(-1)
    pairs, g_keys = np.unique(g_pair, return_inverse=True)
    q_p, q_c = _index_in(pids, q_pid), _index_in(cams, q_cam)
    q_pair = np.where((q_p >= 0) & (q_c >= 0), q_p * cams.size + q_c, -1)
    return (_index_in(pairs, q_pair), g_keys.reshape(-1).astype(np.int64),
            max(pairs.size, 1))


def protocol_keep_mask(protocol: str, q_pids: Sequence[Optional[int]],
                       q_cams: Sequence[Optional[int]],
                       g_pids: Sequence[Optional[int]],
                       g_cams: Sequence[Optional[int]]) -> np.ndarray:
    """Which gallery items each query may be matched with.

    Args:
        protocol (str): ``'sysu'``, ``'llcm'`` or ``'regdb'``.
        q_pids, q_cams (Sequence[int]): ``(Q,)`` query person ids / cameras.
        g_pids, g_cams (Sequence[int]): ``(G,)`` gallery person ids /
            cameras.

    Returns:
        np.ndarray: ``(Q, G)`` bool, True where the pair is kept (see
        :func:`protocol_drop_keys` for the rule).
    """
    q_keys, g_keys, _ = protocol_drop_keys(protocol, q_pids, q_cams, g_pids,
                                           g_cams)
    return q_keys[:, None] != g_keys[None, :]


def _prefix(owner: str) -> str:
    return f'{owner}: ' if owner else ''


def _column(values: Optional[Sequence[Optional[int]]], what: str,
            protocol: str) -> np.ndarray:
    """``values`` as an array, refusing missing (None) entries."""
    if values is None:
        raise ValueError(f'the {protocol!r} keep rule needs {what}.')
    arr = np.asarray(values)
    if arr.dtype == object:
        missing = [i for i, v in enumerate(arr.tolist()) if v is None]
        if missing:
            raise ValueError(
                f'the {protocol!r} keep rule needs {what} for every image, '
                f'but {len(missing)} image(s) have none (first at position '
                f'{missing[0]}).')
        arr = arr.astype(np.int64)
    return arr.reshape(-1)


def _index_in(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``sorted_values``, -1 where absent."""
    values = np.asarray(values).reshape(-1)
    if sorted_values.size == 0:
        return np.full(values.shape[0], -1, dtype=np.int64)
    pos = np.clip(
        np.searchsorted(sorted_values, values), 0, sorted_values.size - 1)
    return np.where(sorted_values[pos] == values, pos, -1).astype(np.int64)
