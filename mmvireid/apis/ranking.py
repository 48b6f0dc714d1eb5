# Copyright (c) mmvireid contributors. All rights reserved.
"""Gallery ranking for inference and visualisation (no mmengine needed).

The scores are those :class:`~mmvireid.evaluation.VIReIDMetric` ranks by:
the dot product of the (L2-normalised) retrieval features, i.e. the cosine
similarity, higher is better. The optional protocol filter drops the gallery
items a protocol never lets a query see (docs/en/protocols.md §1):

* ``'sysu'``: a query from camera 3 drops every gallery item of camera 2,
  whatever its identity;
* ``'llcm'``: a gallery item with the query's person id **and** camera
  number is dropped;
* ``'regdb'``: nothing is dropped.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch

__all__ = [
    'PROTOCOLS', 'protocol_keep_mask', 'rank_gallery', 'RANKINGS_HEADER',
    'first_correct_rank', 'ranking_record', 'write_rankings'
]

PROTOCOLS = ('sysu', 'regdb', 'llcm')


def _as_int_array(values: Sequence[Optional[int]], name: str,
                  protocol: str) -> np.ndarray:
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise ValueError(
            f"protocol filtering ({protocol!r}) needs {name} for every image, "
            f'but {len(missing)} image(s) have none (first at position '
            f'{missing[0]}). Pass them explicitly, or use image paths in the '
            'dataset layout (".../camN/PPPP/file"), or protocol=None.')
    return np.asarray(values, dtype=np.int64)


def protocol_keep_mask(protocol: str, q_pids: Sequence[Optional[int]],
                       q_cams: Sequence[Optional[int]],
                       g_pids: Sequence[Optional[int]],
                       g_cams: Sequence[Optional[int]]) -> np.ndarray:
    """Which gallery items each query may be matched with.

    Args:
        protocol (str): ``'sysu'``, ``'llcm'`` or ``'regdb'``.
        q_pids, q_cams (Sequence[int]): ``(Q,)`` query person ids / cameras.
        g_pids, g_cams (Sequence[int]): ``(G,)`` gallery person ids / cameras.

    Returns:
        np.ndarray: ``(Q, G)`` bool, True where the pair is kept.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS} or None, got '
                         f'{protocol!r}.')
    num_q, num_g = len(q_cams), len(g_cams)
    if protocol == 'regdb':
        return np.ones((num_q, num_g), dtype=bool)
    q_cam = _as_int_array(q_cams, 'camera ids', protocol)
    g_cam = _as_int_array(g_cams, 'camera ids', protocol)
    if protocol == 'sysu':
        # The rule does not look at identities (docs/en/protocols.md §1).
        drop = (q_cam[:, None] == 3) & (g_cam[None, :] == 2)
    else:
        q_pid = _as_int_array(q_pids, 'person ids', protocol)
        g_pid = _as_int_array(g_pids, 'person ids', protocol)
        drop = (q_pid[:, None] == g_pid[None, :]) & (
            q_cam[:, None] == g_cam[None, :])
    return ~drop


def rank_gallery(query_feats: torch.Tensor,
                 gallery_feats: torch.Tensor,
                 topk: Optional[int] = 10,
                 keep: Optional[np.ndarray] = None,
                 chunk_size: int = 1024,
                 distances: Optional[np.ndarray] = None) -> List[List[tuple]]:
    """Top-k gallery items of every query by descending similarity.

    Args:
        query_feats (Tensor): ``(Q, D)`` features (L2-normalised for cosine
            scores, as the models' ``predict`` returns them).
        gallery_feats (Tensor): ``(G, D)`` features.
        topk (int, optional): Matches kept per query; None keeps the whole
            (filtered) gallery. Defaults to 10.
        keep (np.ndarray, optional): ``(Q, G)`` bool mask of allowed pairs
            (see :func:`protocol_keep_mask`). Defaults to None (all).
        chunk_size (int): Queries scored at once, bounding memory to
            ``chunk_size x G`` scores. Defaults to 1024.
        distances (np.ndarray, optional): ``(Q, G)`` distances to order by
            instead of the similarity, smaller first (e.g. k-reciprocal
            re-ranked ones, :func:`~mmvireid.evaluation.re_ranking`); the
            returned scores stay the cosine similarities. Defaults to None.

    Returns:
        list[list[tuple[int, float]]]: For each query, ``(gallery index,
        score)`` pairs, best first. Equal scores keep gallery order.
    """
    q = torch.as_tensor(query_feats).float()
    g = torch.as_tensor(gallery_feats).float()
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError('rank_gallery: expected (Q, D) query and (G, D) '
                         f'gallery features, got {tuple(q.shape)} and '
                         f'{tuple(g.shape)}.')
    if keep is not None and tuple(keep.shape) != (q.shape[0], g.shape[0]):
        raise ValueError(f'rank_gallery: keep mask of shape {keep.shape} '
                         f'does not match {q.shape[0]} queries x '
                         f'{g.shape[0]} gallery items.')
    if topk is not None and topk < 1:
        raise ValueError(f'rank_gallery: topk must be >= 1 or None, got '
                         f'{topk}.')
    if distances is not None:
        distances = np.asarray(distances)
        if distances.shape != (q.shape[0], g.shape[0]):
            raise ValueError(
                f'rank_gallery: distances of shape {distances.shape} do not '
                f'match {q.shape[0]} queries x {g.shape[0]} gallery items.')
    out: List[List[tuple]] = []
    for start in range(0, q.shape[0], chunk_size):
        scores = (q[start:start + chunk_size] @ g.T).numpy()
        for row, score in enumerate(scores):
            idx = np.arange(score.shape[0])
            if keep is not None:
                idx = idx[keep[start + row]]
            # Stable sort of the negated scores: ties keep gallery order.
            key = -score[idx] if distances is None else \
                distances[start + row][idx]
            order = idx[np.argsort(key, kind='stable')]
            if topk is not None:
                order = order[:topk]
            out.append([(int(i), float(score[i])) for i in order])
    return out


#: Header keys of ``rankings.json``, in order (None where they do not
#: apply: the inferencer has no trial or gallery draw).
RANKINGS_HEADER = ('source', 'config', 'weights', 'protocol', 'direction',
                   'trial', 'gallery_mode', 'filtered', 'rerank', 'topk',
                   'num_query', 'num_gallery')
#: Keys every query and match record carries (None when unknown).
RANKING_META_KEYS = ('img_path', 'pid', 'cam_id', 'modality')


def first_correct_rank(matches: Sequence[dict]) -> Optional[int]:
    """1-based rank of the first match of the query's identity among
    ``matches`` (their ``correct`` flags), None if there is none or the
    identities are unknown."""
    return next((m['rank'] for m in matches if m.get('correct')), None)


def ranking_record(query: dict,
                   matches: Sequence[dict],
                   image: Optional[str] = None) -> dict:
    """One query's entry of ``rankings.json``.

    Args:
        query (dict): ``img_path``, ``pid``, ``cam_id``, ``modality`` (and
            any extra keys, e.g. ``index`` or ``sample_idx``).
        matches (Sequence[dict]): Best first, each with the same keys plus
            ``rank`` (1-based), ``score`` and ``correct`` (True / False /
            None when an identity is unknown).
        image (str, optional): The ranking PNG drawn for it.

    Returns:
        dict: ``query``, ``matches``, ``first_correct_rank`` and ``image``.
    """

    def complete(meta: dict) -> dict:
        return dict({k: meta.get(k) for k in RANKING_META_KEYS}, **meta)

    matches = [complete(m) for m in matches]
    for i, m in enumerate(matches):
        missing = [k for k in ('rank', 'score', 'correct') if k not in m]
        if missing:
            raise KeyError(f'ranking_record: match {i} has no {missing}.')
    return dict(
        query=complete(query),
        matches=matches,
        first_correct_rank=first_correct_rank(matches),
        image=image)


def write_rankings(out_dir: str, rankings: Sequence[dict], **header) -> str:
    """Write ``<out_dir>/rankings.json``: the one writer of the file, for
    ``tools/test.py --show-dir`` (the ranking hook) and
    :meth:`VIReIDInferencer.save`.

    The file is ``{<RANKINGS_HEADER keys>, 'rankings': [...]}`` with every
    entry in :func:`ranking_record`'s form (``first_correct_rank`` filled
    in from the matches). It is written to a temporary file and renamed, so
    a crash never leaves half a file.

    Args:
        out_dir (str): Output folder (created).
        rankings (Sequence[dict]): Entries with ``query`` and ``matches``
            (and optionally ``image``).
        **header: Values of :data:`RANKINGS_HEADER` keys.

    Returns:
        str: The path written.
    """
    import json
    import os
    import os.path as osp
    import tempfile
    unknown = set(header) - set(RANKINGS_HEADER)
    if unknown:
        raise KeyError(f'write_rankings: unknown header keys '
                       f'{sorted(unknown)}; use {list(RANKINGS_HEADER)}.')
    payload = {k: header.get(k) for k in RANKINGS_HEADER}
    payload['rankings'] = [
        ranking_record(r['query'], r['matches'], r.get('image'))
        for r in rankings
    ]
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'rankings.json')
    fd, tmp = tempfile.mkstemp(prefix='.rankings.', suffix='.tmp', dir=out_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path
