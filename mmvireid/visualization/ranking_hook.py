# Copyright (c) mmvireid contributors. All rights reserved.
"""Test-time hook that draws ranking lists (``tools/test.py --show-dir``)."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import collect_results, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmvireid.evaluation.functional import rank_gallery, re_ranking
from mmvireid.registry import HOOKS
from mmvireid.structures import (DATASET_PROTOCOLS, DIRECTIONS, GALLERY_MODES,
                                 LLCM_VIS2IR_MODES, PROTOCOL_DIRECTIONS,
                                 PROTOCOLS, ProtocolSplit, check_protocol,
                                 protocol_keep_mask)
from .ranking_visualizer import VIReIDVisualizer
from .rankings_file import write_rankings

__all__ = ['RankingVisualizationHook', 'enable_ranking_visualization']


@HOOKS.register_module()
class RankingVisualizationHook(Hook):
    """Draw the ranking lists of a sample of test queries.

    During ``runner.test()`` the hook keeps every test sample's predicted
    feature (``pred_feat``), identity, camera, modality and path; after the
    test epoch it gathers them from all ranks, rebuilds the query and gallery
    of one trial and direction of the protocol (the metric's own split,
    :class:`~mmvireid.structures.ProtocolSplit`), ranks the gallery of
    ``num_queries`` queries spread evenly over the query list, and writes
    one PNG per query
    (:class:`VIReIDVisualizer`: query, top-k matches framed green / red for
    the right / a wrong identity, scores, modality, camera, identity) plus
    ``rankings.json`` with the same information. The drawings also go to the
    runner's visualizer backends, so they show up in TensorBoard / W&B
    when those are configured.

    ``tools/test.py CONFIG CKPT --show-dir DIR`` adds this hook.

    Args:
        out_dir (str, optional): Folder for the PNGs and ``rankings.json``;
            a relative path is relative to the current directory. Defaults
            to ``<log_dir>/rankings``.
        topk (int): Gallery matches per row. Defaults to 10.
        num_queries (int): Queries drawn. Defaults to 20.
        protocol (str, optional): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
            Defaults to the test evaluator's ``VIReIDMetric.protocol``, else
            the dataset's.
        direction (str, optional): ``'ir2vis'`` or ``'vis2ir'``. Defaults to
            the metric's main direction (SYSU ``'ir2vis'``).
        trial (int): Gallery draw shown. Defaults to 0.
        gallery_mode (str, optional): ``'single'`` / ``'multi'``. Defaults
            to the metric's. (LLCM's ``llcm_vis2ir_mode`` is always the
            metric's.)
        apply_filter (bool): Drop the gallery items the protocol hides from
            each query (SYSU camera 3 vs 2, LLCM same id and camera), as the
            scores do. Defaults to True.
        visualizer (dict, optional): Extra :class:`VIReIDVisualizer`
            arguments (``tile_size``, ``border``, ``font_size``, ...).
        to_backends (bool): Also log the drawings to the runner's
            visualizer backends. Defaults to True.
        rerank (bool | dict, optional): Order the matches by k-reciprocal
            re-ranked distances (``dict(k1=, k2=, lambda_value=)`` or True
            for the defaults), computed over all the trial's queries and
            gallery as the metric does. Defaults to None: as the test
            metric (``VIReIDMetric(rerank=True)`` re-ranks the drawings
            too). The scores written stay the cosine similarities.
        weights (str, optional): The checkpoint evaluated, recorded in
            ``rankings.json`` (``tools/test.py`` passes it). Defaults to
            None.

    ``rankings.json`` is written by :func:`~mmvireid.visualization.
    rankings_file.write_rankings`, the writer of
    :meth:`VIReIDInferencer.save` too: the
    same header keys and, per query, ``query``, ``matches``,
    ``first_correct_rank`` and ``image``.
    """

    priority = 'LOW'

    def __init__(self,
                 out_dir: Optional[str] = None,
                 topk: int = 10,
                 num_queries: int = 20,
                 protocol: Optional[str] = None,
                 direction: Optional[str] = None,
                 trial: int = 0,
                 gallery_mode: Optional[str] = None,
                 apply_filter: bool = True,
                 visualizer: Optional[dict] = None,
                 to_backends: bool = True,
                 rerank: Union[None, bool, dict] = None,
                 weights: Optional[str] = None) -> None:
        if topk < 1 or num_queries < 1:
            raise ValueError('RankingVisualizationHook: topk and num_queries '
                             f'must be >= 1, got {topk} and {num_queries}.')
        if protocol is not None:
            check_protocol(protocol, 'RankingVisualizationHook')
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError('RankingVisualizationHook: direction must be '
                             f'one of {sorted(DIRECTIONS)}, got '
                             f'{direction!r}.')
        self.out_dir = out_dir
        self.topk = int(topk)
        self.num_queries = int(num_queries)
        self.protocol = protocol
        self.direction = direction
        self.trial = int(trial)
        self.gallery_mode = gallery_mode
        self.apply_filter = apply_filter
        self.visualizer_cfg = dict(visualizer or {})
        self.to_backends = to_backends
        if rerank is not None and not isinstance(rerank, (bool, dict)):
            raise TypeError('RankingVisualizationHook: rerank must be None, '
                            'a bool or a dict of re_ranking arguments, got '
                            f'{type(rerank).__name__}.')
        self.rerank = rerank
        self.weights = weights
        self._records: List[dict] = []

    # ------------------------------------------------------------------ #
    def before_test_epoch(self, runner) -> None:
        self._records = []

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or []:
            feat = sample.get('pred_feat')
            if feat is None:
                raise KeyError(
                    'RankingVisualizationHook: the model output has no '
                    '"pred_feat"; the model must return retrieval features '
                    'from predict().')
            missing = [
                k for k in ('gt_label', 'modality', 'sample_idx', 'img_path')
                if sample.get(k) is None
            ]
            if missing:
                raise KeyError(
                    f'RankingVisualizationHook: test data samples lack '
                    f'{missing}; keep them in PackVIReIDInputs (the dataset '
                    'provides them).')
            self._records.append(
                dict(
                    feat=torch.as_tensor(feat).detach().float().cpu(),
                    pid=int(torch.as_tensor(sample.gt_label).reshape(-1)[0]),
                    cam=int(sample.get('cam_id', -1)),
                    modality=sample.get('modality'),
                    sample_idx=int(sample.get('sample_idx')),
                    img_path=sample.get('img_path')))

    def after_test_epoch(self, runner, metrics=None) -> None:
        size = len(runner.test_dataloader.dataset)
        records = collect_results(self._records, size, device='cpu')
        self._records = []
        if not is_main_process():
            return
        records = sorted(records, key=lambda r: r['sample_idx'])
        written = self.draw(records, runner)
        print_log(
            f'RankingVisualizationHook: {len(written)} ranking lists written '
            f'to {self._resolve_out_dir(runner)}',
            logger='current')

    # ------------------------------------------------------------------ #
    def _protocol_settings(self, runner) -> dict:
        """Protocol, direction and gallery draw: the hook's own, else the
        test metric's (when it tests the same protocol), else defaults."""
        metric = None
        evaluator = getattr(runner, 'test_evaluator', None)
        for m in getattr(evaluator, 'metrics', []) or []:
            if type(m).__name__ == 'VIReIDMetric' or hasattr(m, 'protocol'):
                metric = m
                break
        protocol = self.protocol or getattr(metric, 'protocol', None)
        if protocol is None:
            name = runner.test_dataloader.dataset.metainfo.get('dataset_name')
            protocol = DATASET_PROTOCOLS.get(name)
        if protocol is None:
            raise ValueError(
                'RankingVisualizationHook: cannot tell the protocol (no '
                'VIReIDMetric in test_evaluator, unknown dataset); pass '
                f'protocol= one of {PROTOCOLS}.')
        if getattr(metric, 'protocol', None) != protocol:
            metric = None
        directions = getattr(metric, 'directions', None) or \
            PROTOCOL_DIRECTIONS[protocol]
        return dict(
            protocol=protocol,
            direction=self.direction or directions[0],
            gallery_mode=self.gallery_mode
            or getattr(metric, 'gallery_mode', GALLERY_MODES[0]),
            llcm_vis2ir_mode=getattr(metric, 'llcm_vis2ir_mode',
                                     LLCM_VIS2IR_MODES[0]))

    def _rerank_cfg(self, runner) -> Optional[dict]:
        """The re-ranking settings of the scores (None: plain similarity):
        the hook's own ``rerank``, else the test metric's."""
        rerank = self.rerank
        if rerank is None:
            evaluator = getattr(runner, 'test_evaluator', None)
            for m in getattr(evaluator, 'metrics', []) or []:
                if getattr(m, 'rerank', False):
                    return dict(getattr(m, 'rerank_cfg', None) or {})
            return None
        if rerank is False:
            return None
        return {} if rerank is True else dict(rerank)

    def _resolve_out_dir(self, runner) -> str:
        if self.out_dir is None:
            return osp.join(runner.log_dir, 'rankings')
        return self.out_dir

    def draw(self, records: List[dict], runner) -> List[str]:
        """Rank and draw; returns the written PNG paths."""
        settings = self._protocol_settings(runner)
        protocol, direction = settings['protocol'], settings['direction']
        pids = np.array([r['pid'] for r in records], dtype=np.int64)
        cams = np.array([r['cam'] for r in records], dtype=np.int64)
        mods = np.array([r['modality'] for r in records])
        paths = [r['img_path'] for r in records]
        split = ProtocolSplit(protocol, pids, cams, mods, paths,
                              settings['gallery_mode'],
                              settings['llcm_vis2ir_mode'])
        q_idx, g_idx = split(direction, self.trial)
        picks = np.unique(
            np.linspace(0, q_idx.size - 1,
                        min(self.num_queries, q_idx.size)).round().astype(int))
        q_sel = q_idx[picks]
        feats = torch.stack([r['feat'] for r in records])
        keep = None
        if self.apply_filter:
            keep = protocol_keep_mask(protocol, pids[q_sel], cams[q_sel],
                                      pids[g_idx], cams[g_idx])
        rerank = self._rerank_cfg(runner)
        distances = None
        if rerank is not None:
            # as the metric: the k-reciprocal neighbourhoods of all the
            # trial's queries and gallery, then the rows drawn
            distances = re_ranking(feats[q_idx], feats[g_idx], **rerank)[picks]
        ranked = rank_gallery(
            feats[q_sel], feats[g_idx], self.topk, keep, distances=distances)

        out_dir = self._resolve_out_dir(runner)
        os.makedirs(out_dir, exist_ok=True)
        vis = VIReIDVisualizer(
            name=f'ranking_hook_{id(self)}', **self.visualizer_cfg)
        summary, written = [], []
        for qi, matches in zip(q_sel.tolist(), ranked):
            query = self._meta(records[qi])
            gallery = []
            for rank, (gpos, score) in enumerate(matches, start=1):
                rec = records[int(g_idx[gpos])]
                gallery.append(
                    dict(
                        self._meta(rec),
                        rank=rank,
                        score=score,
                        correct=rec['pid'] == records[qi]['pid']))
            name = f'query_{records[qi]["sample_idx"]:06d}'
            out_file = osp.join(out_dir, f'{name}.png')
            drawn = vis.add_ranking(
                name,
                query['img_path'], [g['img_path'] for g in gallery],
                query,
                gallery,
                out_file=out_file,
                to_backends=False)
            if self.to_backends and runner.visualizer is not None:
                # No '/' in the name: LocalVisBackend writes <name>_<step>.png
                # into one folder and fails silently on a missing subfolder.
                runner.visualizer.add_image(f'ranking_{name}', drawn)
            written.append(out_file)
            summary.append(dict(query=query, matches=gallery, image=out_file))
        cfg = getattr(runner, 'cfg', None)
        write_rankings(
            out_dir,
            summary,
            source='tools/test.py --show-dir (RankingVisualizationHook)',
            config=getattr(cfg, 'filename', None),
            weights=self.weights,
            protocol=protocol,
            direction=direction,
            trial=self.trial,
            gallery_mode=settings['gallery_mode'],
            filtered=self.apply_filter,
            rerank=rerank,
            topk=self.topk,
            num_query=int(q_idx.size),
            num_gallery=int(g_idx.size))
        return written

    @staticmethod
    def _meta(rec: dict) -> dict:
        return dict(
            img_path=rec['img_path'],
            pid=rec['pid'],
            cam_id=rec['cam'],
            modality=rec['modality'],
            sample_idx=rec['sample_idx'])


def enable_ranking_visualization(cfg,
                                 out_dir: str,
                                 topk: int = 10,
                                 num_queries: int = 20,
                                 weights: Optional[str] = None) -> None:
    """Add a :class:`RankingVisualizationHook` to ``cfg.custom_hooks``
    (what ``tools/test.py --show-dir`` does); an existing one is updated.

    Args:
        cfg (Config): The test config, changed in place.
        out_dir (str): Folder for the ranking PNGs.
        topk (int): Matches per row. Defaults to 10.
        num_queries (int): Queries drawn. Defaults to 20.
        weights (str, optional): The checkpoint, for ``rankings.json``.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    settings = dict(out_dir=out_dir, topk=topk, num_queries=num_queries)
    if weights is not None:
        settings['weights'] = weights
    for hook in hooks:
        if hook.get('type') in ('RankingVisualizationHook',
                                RankingVisualizationHook):
            hook.update(settings)
            break
    else:
        hooks.append(dict(type='RankingVisualizationHook', **settings))
    cfg.custom_hooks = hooks
    # The hook lives outside the HOOKS registry's default location
    # (mmvireid.engine): make sure a fresh process imports it.
    imports = cfg.get('custom_imports', None) or dict(imports=[])
    names = imports.get('imports', [])
    names = [names] if isinstance(names, str) else list(names)
    if 'mmvireid.visualization' not in names:
        names.append('mmvireid.visualization')
    cfg.custom_imports = dict(imports, imports=names)
