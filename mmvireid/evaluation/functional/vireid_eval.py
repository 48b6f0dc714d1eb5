# Copyright (c) mmvireid contributors. All rights reserved.
"""CMC / mAP / mINP of the SYSU-MM01, RegDB and LLCM protocols.

Vectorised re-implementations of the ``eval_sysu`` / ``eval_regdb`` /
``eval_llcm`` functions shared by the public VI-ReID code (AGW, CSDN, DEEN),
written from the description in ``docs/en/protocols.md`` (section 1). They
return the *same numbers* as that code, quirks included:

* the gallery of each query is ranked with numpy's default (unstable)
  ``argsort`` along axis 1, so exactly tied distances rank as in the
  reference (a row's order depends only on the row, which lets us sort
  queries block by block);
* SYSU returns an identity-deduplicated CMC, RegDB a per-image CMC;
* CMC is float32 and averaged over *valid* queries; mAP and mINP are float64;
* no valid query and ragged CMC rows are errors, as they are in the
  reference (where they surface as ``AssertionError`` and numpy's
  "inhomogeneous shape" ``ValueError``).

There is no Python loop over queries. Queries are scored in blocks of
``block_size`` rows (which bounds memory) by one of two exact strategies:

* **counting** (queries with at most :data:`COUNTING_MAX_MATCHES` gallery
  items of their identity, e.g. every query of a single-shot gallery): the
  kept rank of each correct match is the number of kept items strictly
  closer, so no sort is needed. Ties matter only when a non-matching item
  has exactly a match's distance; such rows are detected and passed on to
* **sorting**: numpy's default ``argsort`` of the rows, exactly the
  reference's call, then whole-array masks and cumulative sums.

Both give the reference's numbers bit for bit: CMC counts are integers, and
average precision is summed over a rebuilt copy of the array the reference
sums (the kept per-image list: match count / rank at the matches, zeros
elsewhere), so even its float64 rounding is the same.
"""
from typing import Optional, Tuple

import numpy as np

from mmvireid.structures import LLCM, REGDB, SYSU, protocol_drop_keys

__all__ = [
    'eval_sysu', 'eval_regdb', 'eval_llcm', 'NoValidQueryError',
    'RaggedCMCError'
]

#: Default number of distance-matrix elements scored per block. Blocks of a
#: few hundred thousand elements keep the temporaries (about 40 bytes per
#: element, ~10 MB here) in cache, which is faster than larger blocks.
DEFAULT_BLOCK_ELEMENTS = 1 << 18

_RAGGED_MODES = ('error', 'pad')


class NoValidQueryError(AssertionError, ValueError):
    """No query has a correct match left in its filtered gallery.

    The reference code fails here with ``assert num_valid_q > 0``. This class
    derives from both :class:`AssertionError` (so code written against the
    reference still catches it) and :class:`ValueError` (the natural type for
    bad input). Unlike a bare ``assert`` it is raised under ``python -O``.
    """


class RaggedCMCError(ValueError):
    """CMC rows of different lengths, where the reference's ``np.asarray``
    stacking fails with numpy's "inhomogeneous shape" ``ValueError``."""


def eval_sysu(distmat: np.ndarray,
              q_pids: np.ndarray,
              g_pids: np.ndarray,
              q_camids: np.ndarray,
              g_camids: np.ndarray,
              max_rank: int = 20,
              *,
              block_size: Optional[int] = None,
              ragged: str = 'error') -> Tuple[np.ndarray, float, float]:
    """SYSU-MM01 evaluation (identity-level CMC, per-image mAP and mINP).

    Quirks reproduced from the reference ``eval_sysu``:

    * **Camera filter**: a query from camera 3 drops every gallery item of
      camera 2, *whatever its identity*; queries from any other camera keep
      the whole gallery. No same-pid/same-camera filter (query and gallery
      cameras never coincide in SYSU-MM01).
    * **Identity-deduplicated CMC**: the kept ranked pids are reduced to
      their distinct values in order of first appearance; the CMC row is 1
      from the position of the query pid in that list, cut to ``max_rank``.
    * **Every query gets a CMC row, but the sum is divided by the number of
      valid queries** (invalid rows are all zeros, so this equals the mean
      over valid queries).
    * **Per-image rows are still checked**: the reference also stacks the
      per-image CMC rows of valid queries (then discards them), so those
      must have equal lengths too (see ``ragged``).
    * mAP and mINP use the per-image kept list and average over valid
      queries (a query is valid when a kept item has its pid).
    * ``max_rank`` becomes the gallery size when the gallery is smaller.

    Args:
        distmat (np.ndarray): ``(num_query, num_gallery)`` distances, smaller
            is closer (the reference passes ``-(q_feat @ g_feat.T)``). Its
            dtype is kept: the tie order of ``argsort`` depends on it.
        q_pids (np.ndarray): ``(num_query,)`` query person ids.
        g_pids (np.ndarray): ``(num_gallery,)`` gallery person ids.
        q_camids (np.ndarray): ``(num_query,)`` query camera ids (3 or 6).
        g_camids (np.ndarray): ``(num_gallery,)`` gallery camera ids.
        max_rank (int): Length of the CMC curve. Defaults to 20.
        block_size (int, optional): Queries scored per block; bounds the
            memory to about ``40 * block_size * num_gallery`` bytes. Defaults
            to None (about 262k matrix elements per block).
        ragged (str): What to do when CMC rows differ in length (some
            query's kept list, or its number of distinct kept pids, is
            shorter than ``max_rank`` and another's is not). ``'error'``
            (default) raises :class:`RaggedCMCError` where the reference
            fails; ``'pad'`` extends every short row with its last value
            (a cumulative curve stays where it ended) to the longest row.

    Returns:
        tuple: ``(cmc, mAP, mINP)``: ``cmc`` a float32 array of length
        ``min(max_rank, num_gallery)`` (shorter when every row is shorter),
        ``mAP`` and ``mINP`` float64 fractions in [0, 1].

    Raises:
        NoValidQueryError: No query is valid (subclass of both
            ``AssertionError`` and ``ValueError``).
        RaggedCMCError: Rows differ in length and ``ragged='error'``
            (subclass of ``ValueError``).
        ValueError: Inputs of the wrong shape or option values.
    """
    return _evaluate(
        distmat,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        protocol=SYSU,
        max_rank=max_rank,
        block_size=block_size,
        ragged=ragged)


def eval_llcm(distmat: np.ndarray,
              q_pids: np.ndarray,
              g_pids: np.ndarray,
              q_camids: np.ndarray,
              g_camids: np.ndarray,
              max_rank: int = 20,
              *,
              block_size: Optional[int] = None,
              ragged: str = 'error') -> Tuple[np.ndarray, float, float]:
    """LLCM evaluation (identity-level CMC, per-image mAP and mINP).

    Identical to :func:`eval_sysu` except for the filter:

    * **Same-pid same-camera filter**: a gallery item is dropped when it has
      the query's pid **and** the query's camera number. Camera numbers come
      from the ``camN`` folder names, and VIS camera k and NIR camera k count
      as the same camera, so same-person same-camera pairs are removed
      *across* modalities.
    * Identity-deduplicated CMC, a row for every query divided by the number
      of valid queries, per-image rows checked for raggedness, ``max_rank``
      capped at the gallery size: as in :func:`eval_sysu`.

    Args:
        distmat (np.ndarray): ``(num_query, num_gallery)`` distances, smaller
            is closer; the dtype is kept for the ``argsort``.
        q_pids (np.ndarray): ``(num_query,)`` query person ids.
        g_pids (np.ndarray): ``(num_gallery,)`` gallery person ids.
        q_camids (np.ndarray): ``(num_query,)`` query camera numbers.
        g_camids (np.ndarray): ``(num_gallery,)`` gallery camera numbers.
        max_rank (int): Length of the CMC curve. Defaults to 20.
        block_size (int, optional): Queries per block (memory bound).
            Defaults to None (about 262k matrix elements per block).
        ragged (str): ``'error'`` (default) or ``'pad'``; see
            :func:`eval_sysu`.

    Returns:
        tuple: ``(cmc, mAP, mINP)`` as in :func:`eval_sysu`.

    Raises:
        NoValidQueryError: No query is valid.
        RaggedCMCError: Rows differ in length and ``ragged='error'``.
        ValueError: Inputs of the wrong shape or option values.
    """
    return _evaluate(
        distmat,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        protocol=LLCM,
        max_rank=max_rank,
        block_size=block_size,
        ragged=ragged)


def eval_regdb(distmat: np.ndarray,
               q_pids: np.ndarray,
               g_pids: np.ndarray,
               max_rank: int = 20,
               *,
               block_size: Optional[int] = None,
               ragged: str = 'error') -> Tuple[np.ndarray, float, float]:
    """RegDB evaluation (per-image CMC, mAP and mINP).

    Quirks reproduced from the reference ``eval_regdb``:

    * **No filtering**: the reference builds camera ids 1 (query) and 2
      (gallery) and applies a same-pid/same-camera filter that can never
      fire, so every gallery item is kept.
    * **Per-image CMC over valid queries**: 1 from the rank of the first
      correct image, cut to ``max_rank``; only valid queries get a row.
    * ``max_rank`` becomes the gallery size when the gallery is smaller.

    Args:
        distmat (np.ndarray): ``(num_query, num_gallery)`` distances, smaller
            is closer; the dtype is kept for the ``argsort``.
        q_pids (np.ndarray): ``(num_query,)`` query person ids.
        g_pids (np.ndarray): ``(num_gallery,)`` gallery person ids.
        max_rank (int): Length of the CMC curve. Defaults to 20.
        block_size (int, optional): Queries per block (memory bound).
            Defaults to None (about 262k matrix elements per block).
        ragged (str): ``'error'`` (default) or ``'pad'``; see
            :func:`eval_sysu`. Without a filter all rows have the same
            length, so this only matters for API symmetry.

    Returns:
        tuple: ``(cmc, mAP, mINP)``: float32 ``cmc`` of length
        ``min(max_rank, num_gallery)``, float64 ``mAP`` and ``mINP``.

    Raises:
        NoValidQueryError: No query pid appears in the gallery.
        ValueError: Inputs of the wrong shape or option values.
    """
    return _evaluate(
        distmat,
        q_pids,
        g_pids,
        None,
        None,
        protocol=REGDB,
        max_rank=max_rank,
        block_size=block_size,
        ragged=ragged)


# ---------------------------------------------------------------------------
# implementation
# ---------------------------------------------------------------------------


def _as_1d(name: str, fn: str, value, length: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f'{fn}: `{name}` must be a 1-D array of length '
                         f'{length} (matching distmat), got shape '
                         f'{arr.shape}.')
    return arr


def _check_ragged(lengths: np.ndarray, what: str, fn: str, max_rank: int,
                  ragged: str) -> int:
    """Return the common row length, or raise / pad as ``ragged`` says."""
    if lengths.size == 0:
        return 0
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo != hi and ragged == 'error':
        short = int(np.count_nonzero(lengths < hi))
        raise RaggedCMCError(
            f'{fn}: {what} CMC rows have different lengths ({lo} to {hi}; '
            f'{short} of {lengths.size} rows are shorter than {hi}, the '
            f'effective max_rank being {max_rank}). A query\'s kept gallery '
            '(or its number of distinct kept identities) is shorter than '
            'max_rank while another\'s is not; the reference code fails '
            'here when stacking the rows. Lower max_rank, enlarge the '
            "gallery, or pass ragged='pad' to extend short rows with their "
            'last value.')
    return hi


def _evaluate(distmat, q_pids, g_pids, q_camids, g_camids, *, protocol: str,
              max_rank: int, block_size: Optional[int],
              ragged: str) -> Tuple[np.ndarray, float, float]:
    fn = f'eval_{protocol}'
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f'{fn}: distmat must be 2-D (num_query, '
                         f'num_gallery), got shape {distmat.shape}.')
    if ragged not in _RAGGED_MODES:
        raise ValueError(f'{fn}: ragged must be one of {_RAGGED_MODES}, '
                         f'got {ragged!r}.')
    if not _is_pos_int(max_rank):
        raise ValueError(f'{fn}: max_rank must be a positive int, got '
                         f'{max_rank!r}.')
    num_q, num_g = distmat.shape
    q_pids = _as_1d('q_pids', fn, q_pids, num_q)
    g_pids = _as_1d('g_pids', fn, g_pids, num_g)
    if protocol != REGDB:
        q_camids = _as_1d('q_camids', fn, q_camids, num_q)
        g_camids = _as_1d('g_camids', fn, g_camids, num_g)
    if block_size is None:
        block_size = max(1, DEFAULT_BLOCK_ELEMENTS // max(num_g, 1))
    elif not _is_pos_int(block_size):
        raise ValueError(f'{fn}: block_size must be a positive int or None, '
                         f'got {block_size!r}.')
    max_rank = min(int(max_rank), num_g)

    filt = _Filter(protocol, q_pids, g_pids, q_camids, g_camids)
    res = _Results(num_q)
    if filt.identity_cmc:
        # Identity rows are at most this long, so a query pid found at a
        # deduplicated position >= id_cap never enters the CMC.
        id_len = np.minimum(filt.num_distinct, max_rank)
        res.id_cap = int(id_len.max()) if num_q else 0
    can_count = np.issubdtype(distmat.dtype, np.floating)

    # Queries are scored in an order of our choosing: each row's result
    # depends only on that row, and the results go back to their query
    # positions before anything is averaged. Grouping the queries whose
    # filter drops nothing spares them the keep masks.
    for filtered in (False, True) if num_g else ():  # no gallery: no hit
        todo = np.flatnonzero((filt.num_removed > 0) == filtered)
        for b in range(0, todo.size, block_size):
            qidx = todo[b:b + block_size]
            if qidx.size == num_q:  # one block holds every query
                block = distmat
            elif qidx[-1] - qidx[0] + 1 == qidx.size:  # a contiguous run
                block = distmat[qidx[0]:qidx[-1] + 1]
            else:
                block = distmat[qidx]
            if can_count:
                left = _score_by_counting(block, qidx, filtered, filt, res)
                if not left.any():
                    continue
                qidx, block = qidx[left], block[left]
            _score_by_sorting(block, qidx, filtered, filt, res)

    valid = res.valid
    num_valid = int(np.count_nonzero(valid))
    if num_valid == 0:
        raise NoValidQueryError(
            f'{fn}: no valid query: for none of the {num_q} queries does an '
            f'item with its pid remain in the gallery ({num_g} items) after '
            f'the {protocol} filter. Check that query and gallery share '
            'identities (the reference asserts "all query identities do '
            'not appear in gallery").')

    # Row-length rules of the reference's np.asarray stacking: the
    # per-image rows of valid queries first, then (SYSU/LLCM) the identity
    # rows of all queries.
    img_len = np.minimum(num_g - filt.num_removed[valid], max_rank)
    img_common = _check_ragged(img_len, 'per-image', fn, max_rank, ragged)
    if filt.identity_cmc:
        cmc_len = _check_ragged(id_len, 'identity', fn, max_rank, ragged)
        positions = res.id_hit[valid]
    else:
        cmc_len = img_common
        positions = res.first_hit[valid]
    # Row q is 1 from `positions[q]` on (and short rows, padded with their
    # last value, stay 1), so column k counts the valid queries with
    # position <= k. Integer counts are exact; the reference's float32 row
    # sums of 0/1 are exact too (below 2**24 queries).
    counts = np.cumsum(
        np.bincount(positions[positions < cmc_len], minlength=cmc_len))
    cmc = counts.astype(np.float32) / float(num_valid)
    mAP = np.mean(res.ap[valid])
    mINP = np.mean(res.inp[valid])
    return cmc, mAP, mINP


#: The counting path compares every gallery distance with each of a query's
#: correct matches (twice), so it pays off while queries have few of them
#: (single-shot galleries: one per camera; RegDB: 10); beyond this the
#: sorting path is used.
COUNTING_MAX_MATCHES = 16


class _Results:
    """Per-query outputs, filled block by block."""

    def __init__(self, num_q: int):
        self.valid = np.zeros(num_q, dtype=bool)
        self.ap = np.zeros(num_q, dtype=np.float64)
        self.inp = np.zeros(num_q, dtype=np.float64)
        self.first_hit = np.zeros(num_q, dtype=np.int64)  # kept rank
        self.id_hit = np.zeros(num_q, dtype=np.int64)  # dedup position
        self.id_cap = 0

    def store_image_metrics(self, qidx, hit_ranks, num_rel, kept_len):
        """AP, INP and first hit from the kept ranks of the matches.

        Args:
            qidx (np.ndarray): ``(V,)`` query indices, all valid.
            hit_ranks (np.ndarray): ``(V, W)`` 0-based kept ranks of each
                query's matches, ascending; entries ``>= num_rel`` unused.
            num_rel (np.ndarray): ``(V,)`` matches per query (>= 1).
            kept_len (np.ndarray): ``(V,)`` kept gallery size per query.

        The reference sums ``hits.cumsum() / rank * hits`` over the whole
        kept list; rebuilding that exact float64 array (zeros but at the
        matches) per kept length keeps AP bit-identical.
        """
        used = np.arange(hit_ranks.shape[1]) < num_rel[:, None]
        for length in np.unique(kept_len):
            sel = np.flatnonzero(kept_len == length)
            rr, kk = np.nonzero(used[sel])
            ranks = hit_ranks[sel][rr, kk]
            prec = np.zeros((sel.size, length), dtype=np.float64)
            prec[rr, ranks] = (kk + 1) / (ranks + 1.)
            self.ap[qidx[sel]] = prec.sum(axis=1) / num_rel[sel]
        last = np.take_along_axis(hit_ranks, num_rel[:, None] - 1, axis=1)
        self.inp[qidx] = num_rel / (last[:, 0] + 1.0)
        self.first_hit[qidx] = hit_ranks[:, 0]


def _score_by_counting(block: np.ndarray, qidx: np.ndarray, filtered: bool,
                       filt: '_Filter', res: _Results) -> np.ndarray:
    """Score a block without sorting it; return the rows left to sort.

    The kept rank of a correct match is the number of kept gallery items
    ranked before it. When no kept non-matching item has *exactly* the
    distance of a match, that number does not depend on how the sort
    orders ties: it is the count of kept items strictly closer, minus the
    matches strictly closer, plus the matches' own order. Ties among
    non-matching items, or among matches, change nothing. Likewise the
    query's place in the deduplicated identity list is the number of
    identities with a kept item strictly closer than its first match.
    Rows where a kept non-match ties with a match, or a match distance is
    not finite, depend on the tie order of numpy's sort: they are returned
    for the sorting path, which reproduces it. So are rows whose identity
    has more than :data:`COUNTING_MAX_MATCHES` gallery items.

    Args:
        block (np.ndarray): ``(B, G)`` float distances of the queries.
        qidx (np.ndarray): ``(B,)`` their query indices.
        filtered (bool): Whether these queries drop gallery items.
        filt (_Filter): Protocol tables.
        res (_Results): Outputs to fill.

    Returns:
        np.ndarray: ``(B,)`` bool, True for rows still to be scored.
    """
    ql = filt.q_lab[qidx]
    has = ql >= 0
    count = np.where(has, filt.label_count[np.where(has, ql, 0)], 0)
    unsure = count > COUNTING_MAX_MATCHES
    if unsure.any():
        if unsure.all():
            return unsure
        take = ~unsure
        left = _score_by_counting(block[take], qidx[take], filtered, filt, res)
        unsure[take] = left
        return unsure
    n = qidx.size
    width = int(count.max()) if n else 0
    # Gallery columns of each query's identity, padded with -1.
    cols = filt.label_items(width)[np.where(has, ql, 0), :width]
    present = (cols >= 0) & has[:, None]
    cols = np.where(present, cols, 0)
    dist, match = block, present
    if filtered:
        # Dropped items become +inf (on a copy): never closer than a
        # finite match, never equal to one.
        dist = np.array(block, copy=True)
        q_key = filt.q_key[qidx]
        dropped = present & (filt.g_key[cols] == q_key[:, None])
        if filt.drops_only_matches:  # LLCM: only these columns
            rr, kk = np.nonzero(dropped)
            dist[rr, cols[rr, kk]] = np.inf
        else:  # SYSU: whole columns, the same for every query of a key
            for key in np.unique(q_key):
                rows, hidden = q_key == key, filt.key_columns(key)
                if rows.all():
                    dist[:, hidden] = np.inf
                else:
                    dist[np.ix_(rows, hidden)] = np.inf
        match = present & ~dropped
    dmatch = np.where(match, np.take_along_axis(dist, cols, axis=1), np.inf)
    # Matches nearest first; unused slots (+inf) last.
    order = np.argsort(dmatch, axis=1, kind='stable')
    dmatch = np.take_along_axis(dmatch, order, axis=1)
    match = np.take_along_axis(match, order, axis=1)
    num_rel = np.count_nonzero(match, axis=1)
    unsure = (match & ~np.isfinite(dmatch)).any(axis=1)

    # Matches strictly closer than / tied with each match.
    m_lt = np.count_nonzero(
        match[:, None, :] & (dmatch[:, None, :] < dmatch[:, :, None]), axis=2)
    m_eq = np.count_nonzero(
        match[:, None, :] & (dmatch[:, None, :] == dmatch[:, :, None]), axis=2)
    ranks = np.zeros((n, width), dtype=np.int64)
    for k in range(width):
        v = dmatch[:, k:k + 1]
        lt = (dist < v).sum(axis=1, dtype=np.int64)
        eq = (dist == v).sum(axis=1, dtype=np.int64)
        # A kept non-match at exactly this distance: the tie order decides.
        unsure |= match[:, k] & (eq != m_eq[:, k])
        ranks[:, k] = lt - m_lt[:, k] + k
    valid = ~unsure & (num_rel > 0)
    res.valid[qidx[~unsure]] = valid[~unsure]
    vidx = np.flatnonzero(valid)
    if vidx.size == 0:
        return unsure
    res.store_image_metrics(qidx[vidx], ranks[vidx], num_rel[vidx],
                            filt.num_g - filt.num_removed[qidx[vidx]])
    if filt.identity_cmc:
        # Distinct identities among the kept items closer than the first
        # match. None when that match ranks first; at least cap (enough:
        # the CMC is shorter) when cap * (most items of one identity)
        # items come before it. Count the rest with a bitmap.
        before = ranks[vidx, 0]
        cap = res.id_cap
        hit = np.where(before == 0, 0, cap)
        need = (before > 0) & (before < cap * filt.label_count.max())
        rows = vidx[need]
        if rows.size:
            rr, cc = np.nonzero(dist[rows] < dmatch[rows, :1])
            seen = np.zeros((rows.size, filt.num_labels), dtype=bool)
            seen[rr, filt.g_lab[cc]] = True
            hit[need] = np.count_nonzero(seen, axis=1)
        res.id_hit[qidx[vidx]] = hit
    return unsure


def _score_by_sorting(block: np.ndarray, qidx: np.ndarray, filtered: bool,
                      filt: '_Filter', res: _Results) -> None:
    """Score a block through the reference's ranking, ties included.

    Args:
        block (np.ndarray): ``(B, G)`` distances of the queries.
        qidx (np.ndarray): ``(B,)`` their query indices.
        filtered (bool): Whether these queries drop gallery items.
        filt (_Filter): Protocol tables.
        res (_Results): Outputs to fill.
    """
    # The reference's call: default argsort along axis 1. A row's order
    # depends only on its values, so sorting any set of rows gives the
    # rows of the whole-matrix sort, ties included.
    order = np.argsort(block, axis=1)
    code = filt.code[order]
    match, keep = filt.ranked_masks(code, qidx, filtered)
    kmatch = match if keep is None else match & keep
    num_rel = np.count_nonzero(kmatch, axis=1)
    bvalid = num_rel > 0
    res.valid[qidx] = bvalid
    vidx = np.flatnonzero(bvalid)
    if vidx.size == 0:
        return
    # Kept ranks of the matches: positions in the kept list.
    kmatch = kmatch[vidx]
    width = int(num_rel[vidx].max())
    if keep is None:
        kept_pos = np.broadcast_to(np.arange(order.shape[1]), kmatch.shape)
    else:
        kept_pos = np.cumsum(keep[vidx], axis=1) - 1
    rr, cc = np.nonzero(kmatch)  # row-major: each row's matches in order
    nth = np.arange(rr.size) - np.repeat(
        np.cumsum(num_rel[vidx]) - num_rel[vidx], num_rel[vidx])
    ranks = np.zeros((vidx.size, width), dtype=np.int64)
    ranks[rr, nth] = kept_pos[rr, cc]
    res.store_image_metrics(qidx[vidx], ranks, num_rel[vidx],
                            filt.num_g - filt.num_removed[qidx[vidx]])
    if filt.identity_cmc:
        first_full = np.argmax(kmatch, axis=1)
        res.id_hit[qidx[vidx]] = _distinct_before(code, keep, vidx, first_full,
                                                  res.id_cap, filt)


def _distinct_before(code: np.ndarray, keep: Optional[np.ndarray],
                     rows: np.ndarray, first: np.ndarray, cap: int,
                     filt: '_Filter') -> np.ndarray:
    """Position of each query pid in its deduplicated ranked list.

    That position is the number of distinct identities among the kept items
    ranked before the query's first kept match (all of them non-matching).
    Only values below ``cap`` matter, and ``cap`` distinct identities
    usually show up within a few dozen ranks, so the count starts on a
    narrow window of the ranking and widens it (x4) only for the rows that
    need it: a row is done once the window reaches its first match or holds
    ``cap`` identities. Within a window, the labels of the counted items are
    sorted per row and their changes counted, which needs no scatter.

    Args:
        code (np.ndarray): ``(B, G)`` ranked gallery codes of the block.
        keep (np.ndarray, optional): ``(B, G)`` ranked keep mask, or None.
        rows (np.ndarray): ``(V,)`` block rows of the valid queries.
        first (np.ndarray): ``(V,)`` full-list rank of each first kept match.
        cap (int): Longest identity CMC row.
        filt (_Filter): Decodes labels from codes.

    Returns:
        np.ndarray: ``(V,)`` exact positions where below ``cap``, some value
        ``>= cap`` otherwise.
    """
    num_g = code.shape[1]
    sentinel = filt.num_labels  # larger than every real label
    out = np.empty(rows.size, dtype=np.int64)
    todo = np.arange(rows.size)
    width = min(num_g, 2 * cap + 16)
    while todo.size:
        r, f = rows[todo], first[todo]
        w = min(width, int(f.max()))
        if w == 0:
            out[todo] = 0
            break
        drop = np.arange(w) >= f[:, None]
        if keep is not None:
            drop |= ~keep[r, :w]
        lab = np.where(drop, sentinel, filt.label_of_code(code[r, :w]))
        lab.sort(axis=1)
        real = lab < sentinel
        distinct = real[:, 0] + np.count_nonzero(
            (lab[:, 1:] != lab[:, :-1]) & real[:, 1:], axis=1)
        done = (f <= w) | (distinct >= cap)
        out[todo[done]] = distinct[done]
        todo = todo[~done]
        width *= 4
    return out


def _is_pos_int(value) -> bool:
    return (isinstance(value, (int, np.integer))
            and not isinstance(value, bool) and value >= 1)


class _Filter:
    """The protocol's keep rule, precomputed on the gallery.

    The rule comes as drop keys (:func:`~mmvireid.structures.
    protocol_drop_keys`): a gallery item is dropped for a query when their
    keys are equal. Every gallery item gets one int *code*, its dense label
    in the high bits and its key in the low ``key_bits`` bits:

    * RegDB: one key, so code = label; nothing is dropped.
    * SYSU: code = 2 * label + (camera == 2); a camera-3 query drops the
      odd codes.
    * LLCM: the key is the (label, camera) pair; a query drops the single
      code of its own pair.

    The sorting path gathers codes in ranked order (one gather gives match
    and keep masks); the counting path visits the gallery columns sorted by
    label, where each identity is one run of columns. Per query, the number
    of dropped items and of distinct kept identities do not depend on the
    ranking and are computed here.
    """

    def __init__(self, protocol, q_pids, g_pids, q_camids, g_camids):
        self.identity_cmc = protocol != REGDB
        uniq, g_lab = np.unique(g_pids, return_inverse=True)
        g_lab = g_lab.reshape(-1).astype(np.int64)
        num_p = self.num_labels = uniq.size
        num_g = self.num_g = g_lab.size
        # Dense query labels; a pid absent from the gallery gets -1 and
        # can never match (the query is then invalid).
        q_lab = np.full(q_pids.shape[0], -1, dtype=np.int64)
        if num_p:
            pos = np.clip(np.searchsorted(uniq, q_pids), 0, num_p - 1)
            hit = uniq[pos] == q_pids
            q_lab[hit] = pos[hit]
        q_key, g_key, num_keys = protocol_drop_keys(protocol, q_pids, q_camids,
                                                    g_pids, g_camids)
        has = q_key >= 0
        key_of = np.where(has, q_key, 0)
        self.num_removed = np.where(
            has,
            np.bincount(g_key, minlength=num_keys)[key_of], 0)
        # The (label, key) pairs of the gallery. An identity disappears
        # from a query's kept list when all its items carry the query's
        # key; a key whose items all have one identity drops only that
        # identity's items.
        pairs, pair_count = np.unique(
            g_lab * num_keys + g_key, return_counts=True)
        pair_lab, pair_key = pairs // num_keys, pairs % num_keys
        self.label_count = np.bincount(g_lab, minlength=num_p)
        whole = pair_count == self.label_count[pair_lab]
        gone = np.bincount(pair_key[whole], minlength=num_keys)
        self.num_distinct = num_p - np.where(has, gone[key_of], 0)
        labels_per_key = np.bincount(pair_key, minlength=num_keys)
        key_label = np.full(num_keys, -1, dtype=np.int64)
        single = labels_per_key[pair_key] == 1
        key_label[pair_key[single]] = pair_lab[single]
        #: Whether every query drops items of its own identity only (LLCM):
        #: then the filter touches only its matches.
        self.drops_only_matches = bool(
            np.all(key_label[q_key[has]] == q_lab[has]))
        bits = self.key_bits = (num_keys - 1).bit_length()
        code = (g_lab << bits) | g_key
        # int32 codes halve the gather traffic; the query-side values get
        # the same dtype so comparisons need no casting.
        dtype = (
            np.int32
            if num_g == 0 or code.max() < np.iinfo(np.int32).max else np.int64)
        self.code = code.astype(dtype)
        self.q_lab = q_lab.astype(dtype)
        self.q_key = q_key.astype(dtype)
        self.key_mask = dtype((1 << bits) - 1)
        # The one code a query drops, where its key fixes its identity.
        self.q_drop_code = np.where(has, (q_lab << bits) | q_key,
                                    -1).astype(dtype)
        # Tables of the counting path.
        self.g_key = g_key
        self.g_lab = g_lab
        self._label_items = None
        self._key_columns = {}

    def label_items(self, width: int) -> np.ndarray:
        """``(P, >= width)`` gallery columns of each identity, -1 padded."""
        if self._label_items is None or self._label_items.shape[1] < width:
            by_label = np.argsort(self.g_lab, kind='stable')
            start = np.r_[0, np.cumsum(self.label_count)[:-1]]
            slot = np.arange(self.num_g) - np.repeat(start, self.label_count)
            keep = slot < width
            table = np.full((self.num_labels, width), -1, dtype=np.int64)
            table[self.g_lab[by_label][keep], slot[keep]] = by_label[keep]
            self._label_items = table
        return self._label_items

    def key_columns(self, key: int) -> np.ndarray:
        """Gallery columns with drop key ``key``."""
        key = int(key)
        if key not in self._key_columns:
            self._key_columns[key] = np.flatnonzero(self.g_key == key)
        return self._key_columns[key]

    def ranked_masks(self, code, qidx, filtered):
        """``(match, keep)`` of a block of ranked codes; keep may be None."""
        ql = self.q_lab[qidx][:, None]
        if self.key_bits == 0:  # RegDB: codes are labels
            return code == ql, None
        match = (code >> self.key_bits) == ql
        if not filtered:
            return match, None
        if self.drops_only_matches:
            return match, code != self.q_drop_code[qidx][:, None]
        q_key = self.q_key[qidx]
        # One key for the whole block (SYSU: camera 3) compares with a
        # scalar, which numpy does faster than with a column.
        key = q_key[0] if (q_key == q_key[0]).all() else q_key[:, None]
        return match, (code & self.key_mask) != key

    def label_of_code(self, code):
        return code >> self.key_bits if self.key_bits else code
