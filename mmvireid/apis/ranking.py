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

__all__ = ['PROTOCOLS', 'protocol_keep_mask', 'rank_gallery']

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
                 chunk_size: int = 1024) -> List[List[tuple]]:
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
    out: List[List[tuple]] = []
    for start in range(0, q.shape[0], chunk_size):
        scores = (q[start:start + chunk_size] @ g.T).numpy()
        for row, score in enumerate(scores):
            idx = np.arange(score.shape[0])
            if keep is not None:
                idx = idx[keep[start + row]]
            # Stable sort of the negated scores: ties keep gallery order.
            order = idx[np.argsort(-score[idx], kind='stable')]
            if topk is not None:
                order = order[:topk]
            out.append([(int(i), float(score[i])) for i in order])
    return out
