# Copyright (c) mmvireid contributors. All rights reserved.
"""Gallery ranking for inference and ranking images (pure numpy / torch).

The scores are those :class:`~mmvireid.evaluation.VIReIDMetric` ranks by:
the dot product of the (L2-normalised) retrieval features, i.e. the cosine
similarity, higher is better. The optional keep mask is a protocol's
(:func:`~mmvireid.structures.protocol_keep_mask`).
"""
from typing import List, Optional, Sequence

import numpy as np
import torch

__all__ = ['rank_gallery', 'first_correct_rank']


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
            (see :func:`~mmvireid.structures.protocol_keep_mask`). Defaults
            to None (all).
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


def first_correct_rank(matches: Sequence[dict]) -> Optional[int]:
    """1-based rank of the first match of the query's identity.

    Args:
        matches (Sequence[dict]): Ranked matches, best first, each with
            ``rank`` (1-based) and ``correct`` (True / False / None when an
            identity is unknown).

    Returns:
        int | None: The ``rank`` of the first correct match; None if there
        is none or the identities are unknown.
    """
    return next((m['rank'] for m in matches if m.get('correct')), None)
