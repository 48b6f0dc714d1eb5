# Copyright (c) mmvireid contributors. All rights reserved.
"""``rankings.json``: the ranking lists of ``tools/test.py --show-dir``
(:class:`~mmvireid.visualization.RankingVisualizationHook`) and of
:meth:`~mmvireid.apis.VIReIDInferencer.save`, in one format."""
import json
import os.path as osp
from typing import Optional, Sequence

from mmvireid.evaluation.functional import first_correct_rank
from mmvireid.utils.fileio import atomic_write

__all__ = [
    'RANKINGS_HEADER', 'RANKING_META_KEYS', 'ranking_record', 'write_rankings'
]

#: Header keys of ``rankings.json``, in order (None where they do not
#: apply: the inferencer has no trial or gallery draw).
RANKINGS_HEADER = ('source', 'config', 'weights', 'protocol', 'direction',
                   'trial', 'gallery_mode', 'filtered', 'rerank', 'topk',
                   'num_query', 'num_gallery')
#: Keys every query and match record carries (None when unknown).
RANKING_META_KEYS = ('img_path', 'pid', 'cam_id', 'modality')


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
    """Write ``<out_dir>/rankings.json``, the one writer of the file.

    The file is ``{<RANKINGS_HEADER keys>, 'rankings': [...]}`` with every
    entry in :func:`ranking_record`'s form (``first_correct_rank`` filled
    in from the matches). It is written atomically
    (:func:`~mmvireid.utils.fileio.atomic_write`), so a crash never leaves
    half a file.

    Args:
        out_dir (str): Output folder (created).
        rankings (Sequence[dict]): Entries with ``query`` and ``matches``
            (and optionally ``image``).
        **header: Values of :data:`RANKINGS_HEADER` keys.

    Returns:
        str: The path written.
    """
    unknown = set(header) - set(RANKINGS_HEADER)
    if unknown:
        raise KeyError(f'write_rankings: unknown header keys '
                       f'{sorted(unknown)}; use {list(RANKINGS_HEADER)}.')
    payload = {k: header.get(k) for k in RANKINGS_HEADER}
    payload['rankings'] = [
        ranking_record(r['query'], r['matches'], r.get('image'))
        for r in rankings
    ]
    path = osp.join(out_dir, 'rankings.json')
    atomic_write(path, json.dumps(payload, indent=1))
    return path
