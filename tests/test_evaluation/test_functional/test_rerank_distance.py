# Copyright (c) mmvireid contributors. All rights reserved.
"""k-reciprocal re-ranking against a dense per-item loop, and distances."""
import numpy as np
import pytest
import torch

from mmvireid.evaluation.functional import (l2_normalize, pairwise_distance,
                                            re_ranking)


def rerank_loop(q_feat, g_feat, k1, k2, lambda_value):
    """Dense, loop-per-item k-reciprocal re-ranking (Zhong et al. 2017),
    in the order of the widely used numpy implementation."""
    feat = np.concatenate([q_feat, g_feat]).astype(np.float64)
    num_q, num = q_feat.shape[0], feat.shape[0]
    sq = (feat**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * feat @ feat.T
    dist = (dist / dist.max(axis=0)).T
    ranking = np.argsort(dist, axis=1, kind='stable')

    def reciprocal(i, k):
        return np.array(
            [j for j in ranking[i, :k + 1] if i in ranking[j, :k + 1]],
            dtype=np.int64)

    weights = np.zeros((num, num))
    half = int(np.around(k1 / 2))
    for i in range(num):
        neighbours = reciprocal(i, k1)
        expanded = list(neighbours)
        for cand in neighbours:
            cand_set = reciprocal(cand, half)
            shared = len(set(cand_set.tolist()) & set(neighbours.tolist()))
            if shared > 2 / 3 * len(cand_set):
                expanded.extend(cand_set)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        weights[i, expanded] = w / w.sum()
    if k2 != 1:
        weights = np.stack(
            [weights[ranking[i, :k2]].mean(axis=0) for i in range(num)])
    final = np.zeros((num_q, num - num_q))
    for i in range(num_q):
        for j in range(num - num_q):
            s = np.minimum(weights[i], weights[num_q + j]).sum()
            final[i, j] = (1 - s / (2 - s)) * (1 - lambda_value) + \
                dist[i, num_q + j] * lambda_value
    return final


@pytest.mark.parametrize(
    'num_q,num_g,dim,k1,k2,lam,block,pairs',
    [
        (12, 25, 8, 20, 6, 0.3, 1024, 1 << 23),  # paper defaults
        (12, 25, 8, 20, 6, 0.3, 5, 40),  # tiny blocks and join chunks
        (20, 16, 4, 5, 3, 0.5, 7, 1000),
        (9, 30, 16, 7, 1, 0.0, 4, 100),  # no query expansion, pure Jaccard
        (4, 6, 3, 15, 20, 1.0, 3, 10),  # k1, k2 beyond N; lambda 1
    ])
def test_rerank_matches_dense_loop(num_q, num_g, dim, k1, k2, lam, block,
                                   pairs):
    rng = np.random.default_rng(num_q * 100 + num_g)
    q = rng.standard_normal((num_q, dim)).astype(np.float32)
    g = rng.standard_normal((num_g, dim)).astype(np.float32)
    expected = rerank_loop(q, g, k1, k2, lam)
    got = re_ranking(q, g, k1, k2, lam, block_size=block, max_pairs=pairs)
    assert got.dtype == np.float32 and got.shape == (num_q, num_g)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    if lam == 1.0:  # only the normalised original distance is left
        feat = np.concatenate([q, g]).astype(np.float64)
        d = ((feat[:num_q, None] - feat[None, num_q:])**2).sum(-1)
        full = ((feat[:, None] - feat[None])**2).sum(-1)
        np.testing.assert_allclose(
            got, d / full[:num_q].max(1, keepdims=True), atol=1e-6)


def test_rerank_changes_ranking_and_accepts_tensors():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5, 16))
    q = centers[rng.integers(0, 5, 20)] + 0.8 * rng.standard_normal((20, 16))
    g = centers[rng.integers(0, 5, 40)] + 0.8 * rng.standard_normal((40, 16))
    q, g = q.astype(np.float32), g.astype(np.float32)
    plain = pairwise_distance(q, g, 'sqeuclidean')
    reranked = re_ranking(torch.from_numpy(q), torch.from_numpy(g))
    np.testing.assert_allclose(reranked, re_ranking(q, g), atol=0)
    assert (np.argsort(plain, 1) != np.argsort(reranked, 1)).any()
    np.testing.assert_allclose(
        reranked, rerank_loop(q, g, 20, 6, 0.3), atol=2e-6)


def test_rerank_argument_errors():
    q, g = np.zeros((2, 3)), np.zeros((4, 5))
    with pytest.raises(ValueError, match='same feature size, got 3 and 5'):
        re_ranking(q, g)
    with pytest.raises(ValueError, match=r'`q_feat` must be 2-D'):
        re_ranking(np.zeros(3), g)
    with pytest.raises(ValueError, match='k1 must be a positive int'):
        re_ranking(q, np.zeros((4, 3)), k1=0)
    with pytest.raises(ValueError, match=r'lambda_value must lie in \[0, 1\]'):
        re_ranking(q, np.zeros((4, 3)), lambda_value=2)
    assert re_ranking(np.zeros((0, 3)), np.zeros((4, 3))).shape == (0, 4)


def test_pairwise_distance_metrics():
    q = np.array([[3., 4.], [1., 0.]], dtype=np.float32)
    g = np.array([[0., 1.], [3., 4.], [0., 0.]], dtype=np.float32)
    np.testing.assert_array_equal(
        pairwise_distance(q, g), -np.float32([[4, 25, 0], [0, 3, 0]]))
    np.testing.assert_allclose(
        pairwise_distance(q, g, 'sqeuclidean'), [[18, 0, 25], [2, 20, 1]])
    np.testing.assert_allclose(
        pairwise_distance(q, g, 'euclidean'),
        [[np.sqrt(18), 1e-6, 5], [np.sqrt(2), np.sqrt(20), 1]],
        rtol=1e-6)
    np.testing.assert_allclose(
        pairwise_distance(q, g, 'cosine'), [[0.2, 0, 1], [1, 0.4, 1]],
        atol=1e-7)
    np.testing.assert_allclose(
        pairwise_distance(q, g, normalize=True), [[-0.8, -1, 0], [0, -0.6, 0]],
        atol=1e-7)
    t = pairwise_distance(torch.tensor(q).half(), torch.tensor(g))
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t, pairwise_distance(q, g))
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_distance(q, g, 'manhattan')
    np.testing.assert_allclose(
        l2_normalize(np.array([[3., 4.], [0., 0.]])), [[.6, .8], [0, 0]])
