# Copyright (c) mmvireid contributors. All rights reserved.
"""Query x gallery distance matrices for retrieval evaluation."""
import numpy as np

__all__ = ['pairwise_distance', 'l2_normalize']

_METRICS = ('neg_dot', 'euclidean', 'sqeuclidean', 'cosine')


def _as_features(feat, fn: str, name: str) -> np.ndarray:
    """``(N, D)`` floating numpy features from an array or a torch tensor."""
    if hasattr(feat, 'detach'):  # a torch tensor, without importing torch
        feat = feat.detach().cpu()
        if str(feat.dtype) in ('torch.float16', 'torch.bfloat16'):
            feat = feat.float()
        feat = feat.numpy()
    feat = np.asarray(feat)
    if feat.ndim != 2:
        raise ValueError(f'{fn}: `{name}` must be 2-D (num, dim), got '
                         f'shape {feat.shape}.')
    if not np.issubdtype(feat.dtype, np.floating) or feat.dtype == np.float16:
        feat = feat.astype(np.float32)  # BLAS has no float16 / int matmul
    return feat


def l2_normalize(feat: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by ``max(||row||, eps)`` (``F.normalize`` semantics).

    Args:
        feat (np.ndarray): ``(N, D)`` features.
        eps (float): Lower bound of the norm. Defaults to 1e-12.

    Returns:
        np.ndarray: ``(N, D)`` unit rows (zero rows stay zero).
    """
    feat = np.asarray(feat)
    norm = np.sqrt(np.einsum('ij,ij->i', feat, feat))
    return feat / np.maximum(norm, eps)[:, None].astype(feat.dtype)


def pairwise_distance(q_feat,
                      g_feat,
                      metric: str = 'neg_dot',
                      normalize: bool = False) -> np.ndarray:
    """Distance matrix between query and gallery features (smaller = closer).

    Args:
        q_feat (np.ndarray | torch.Tensor): ``(Q, D)`` query features.
        g_feat (np.ndarray | torch.Tensor): ``(G, D)`` gallery features.
        metric (str): One of

            - ``'neg_dot'`` (default): ``-(q @ g.T)``, what the reference
              test scripts (AGW, CSDN, DEEN) pass to ``eval_sysu`` and
              friends; equals ``cosine - 1`` on unit features;
            - ``'euclidean'``: ``sqrt(clamp(|q|^2 + |g|^2 - 2 q.g, 1e-12))``;
            - ``'sqeuclidean'``: ``|q|^2 + |g|^2 - 2 q.g``;
            - ``'cosine'``: ``1 - cos(q, g)``.
        normalize (bool): L2-normalise both sides first. Defaults to False.

    Returns:
        np.ndarray: ``(Q, G)`` distances in the promoted feature dtype
        (float32 for float32 or torch float16 features).
    """
    if metric not in _METRICS:
        raise ValueError(f'pairwise_distance: metric must be one of '
                         f'{_METRICS}, got {metric!r}.')
    q = _as_features(q_feat, 'pairwise_distance', 'q_feat')
    g = _as_features(g_feat, 'pairwise_distance', 'g_feat')
    if q.shape[1] != g.shape[1]:
        raise ValueError('pairwise_distance: q_feat and g_feat must have the '
                         f'same feature size, got {q.shape[1]} and '
                         f'{g.shape[1]}.')
    if normalize or metric == 'cosine':
        q, g = l2_normalize(q), l2_normalize(g)
    dot = q @ g.T
    if metric == 'neg_dot':
        return np.negative(dot, out=dot)
    if metric == 'cosine':
        return np.subtract(1, dot, out=dot)
    dist = np.einsum('ij,ij->i', q, q)[:, None] - 2 * dot
    dist += np.einsum('ij,ij->i', g, g)[None, :]
    if metric == 'euclidean':
        return np.sqrt(np.maximum(dist, 1e-12, out=dist), out=dist)
    return dist
