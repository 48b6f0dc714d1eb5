# Copyright (c) mmvireid contributors. All rights reserved.
"""VI-ReID retrieval metric: SYSU-MM01, RegDB and LLCM test protocols."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmvireid.registry import METRICS
from mmvireid.structures import (MODALITIES, REGDB, SYSU, ProtocolSplit,
                                 check_protocol_options)
from ..functional import (eval_llcm, eval_regdb, eval_sysu, l2_normalize,
                          pairwise_distance, re_ranking)

_RANKS = (1, 5, 10, 20)


@METRICS.register_module()
class VIReIDMetric(BaseMetric):
    """Cross-modality retrieval metric with the public protocols' rules.

    The test dataloader yields every test image of both modalities once. For
    each image the model predicts one retrieval feature; :meth:`process`
    keeps it (on CPU) with the person id, camera and modality, and
    :meth:`compute_metrics` builds the query and gallery sets of every trial
    and direction from those features alone
    (:class:`~mmvireid.structures.ProtocolSplit`), so one feature pass
    scores all trials. Scores come from :mod:`mmvireid.evaluation.functional`
    with the reference's distance, ``-(q_feat @ g_feat.T)``.

    **Expected sample order.** Within a modality, samples are taken in
    ``sample_idx`` order, which must be the reference's listing order: ids
    ascending (as 4-digit strings), cameras inner in protocol order, files
    sorted by name. Consecutive gallery-modality samples with the same
    ``(pid, cam_id)`` are one ``(id, camera)`` folder (see
    :func:`~mmvireid.structures.group_consecutive`).

    **Protocols.**

    * ``'sysu'``: queries = all IR images, gallery = per trial, one VIS
      image per folder (``gallery_mode='single'``, drawn exactly as the
      reference's ``random.seed(trial)`` + ``random.choice``) or ten
      (``'multi'``, ``np.random.RandomState(trial)``: the reference uses
      numpy's unseeded global state, so this is our reproducible choice);
      :func:`eval_sysu`; trials ``0..num_trials-1``. Only ``'ir2vis'``.
    * ``'llcm'``: the same structure with :func:`eval_llcm`. ``'ir2vis'`` =
      all NIR queries vs a sampled VIS gallery (DEEN's ``test_mode=[1, 2]``).
      ``'vis2ir'`` depends on ``llcm_vis2ir_mode``: ``'symmetric'``
      (default) = all VIS queries vs a sampled NIR gallery; ``'deen'`` =
      what DEEN's ``test_mode=[2, 1]`` literally computes, sampled NIR
      *rows* ranked against all VIS images.
    * ``'regdb'``: all VIS vs all IR images, no sampling, one trial,
      :func:`eval_regdb`. RegDB's ten "trials" are ten train/test splits,
      each with its own checkpoint: run one test per split.

    **Returned metrics** (percent, like OpenMMLab logs; ``prefix/`` is
    added by MMEngine): for the main direction (``'ir2vis'`` for SYSU,
    otherwise the first of ``directions``) ``Rank-1``, ``Rank-5``,
    ``Rank-10``, ``Rank-20``, ``mAP``, ``mINP`` (means over trials); for
    every direction ``{dir}/Rank-k``, ``{dir}/mAP``, ``{dir}/mINP`` and
    ``{dir}/<name>_std`` (population std over trials, 0 for one trial).
    Ranks beyond the CMC length (``max_rank`` or a smaller gallery) are
    left out. Means are computed like the reference's test loops: per-trial
    values summed (the CMC in float32) and divided by the trial count.
    The full per-trial numbers are kept in :attr:`last_results`.

    Args:
        protocol (str): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
            Defaults to ``'sysu'``.
        num_trials (int): Gallery draws for SYSU/LLCM; RegDB always uses 1.
            Defaults to 10.
        gallery_mode (str): ``'single'`` or ``'multi'`` (SYSU only).
            Defaults to ``'single'``.
        directions (Sequence[str], optional): Subset of ``('vis2ir',
            'ir2vis')`` in the order to report. Defaults to None: SYSU
            ``('ir2vis',)``, RegDB/LLCM ``('vis2ir', 'ir2vis')``.
        llcm_vis2ir_mode (str): ``'symmetric'`` or ``'deen'``, see above.
            Defaults to ``'symmetric'``.
        max_rank (int): CMC length. Defaults to 20.
        rerank (bool): Score k-reciprocal re-ranked distances
            (:func:`re_ranking`) instead of ``-(q @ g.T)``. Defaults to False.
        rerank_cfg (dict, optional): ``k1``, ``k2``, ``lambda_value`` for
            :func:`re_ranking`. Defaults to None (20, 6, 0.3).
        feat_norm (bool): L2-normalise features before scoring. The
            reference test loops do not; our models already output unit
            features. Defaults to False.
        store_fp16 (bool): Keep the collected features in float16 (half the
            memory and the cross-rank traffic, at the cost of rounding that
            may reorder near ties). Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Metric name prefix. Defaults to ``'reid'``.
        collect_dir (str, optional): Shared folder for ``'cpu'`` collection
            across nodes. Defaults to None.

    Attributes:
        last_results (dict | None): The last evaluation in plain Python
            types (percent values), for ``tools/test.py --out``::

                {'protocol', 'gallery_mode', 'num_trials', 'main_direction',
                 'directions': {dir: {
                     'trials': [{'trial', 'num_query', 'num_gallery',
                                 'cmc': [...], 'Rank-1', ..., 'mAP',
                                 'mINP'}, ...],
                     'mean': {...}, 'std': {...}}}}
    """

    default_prefix = 'reid'

    def __init__(self,
                 protocol: str = SYSU,
                 num_trials: int = 10,
                 gallery_mode: str = 'single',
                 directions: Optional[Sequence[str]] = None,
                 llcm_vis2ir_mode: str = 'symmetric',
                 max_rank: int = 20,
                 rerank: bool = False,
                 rerank_cfg: Optional[dict] = None,
                 feat_norm: bool = False,
                 store_fp16: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = 'reid',
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        name = type(self).__name__
        directions = check_protocol_options(
            protocol,
            directions,
            gallery_mode=gallery_mode,
            llcm_vis2ir_mode=llcm_vis2ir_mode,
            owner=name)
        for key, value in (('num_trials', num_trials), ('max_rank', max_rank)):
            is_int = isinstance(value, (int, np.integer))
            if not is_int or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name}: {key} must be a positive int, '
                                 f'got {value!r}.')
        rerank_cfg = dict(rerank_cfg or {})
        unknown = set(rerank_cfg) - {'k1', 'k2', 'lambda_value'}
        if unknown:
            raise ValueError(f'{name}: unknown rerank_cfg keys '
                             f'{sorted(unknown)}; use k1, k2, lambda_value.')

        self.protocol = protocol
        self.num_trials = 1 if protocol == REGDB else int(num_trials)
        self.gallery_mode = gallery_mode
        self.directions = directions
        self.llcm_vis2ir_mode = llcm_vis2ir_mode
        self.max_rank = int(max_rank)
        self.rerank = bool(rerank)
        self.rerank_cfg = rerank_cfg
        self.feat_norm = bool(feat_norm)
        self.store_fp16 = bool(store_fp16)
        self.last_results: Optional[dict] = None

    # ------------------------------------------------------------------
    # collection
    # ------------------------------------------------------------------
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep feature, identity, camera, modality and order of each sample.

        Args:
            data_batch: Unused.
            data_samples (Sequence[dict]): Model outputs as dicts (MMEngine
                converts data samples) with ``pred_feat`` (1-D tensor),
                ``gt_label`` (the original person id), ``cam_id``,
                ``modality`` (``'vis'``/``'ir'``), ``sample_idx`` and
                optionally ``img_path``.
        """
        # One device-to-host copy per batch rather than one per sample (each
        # copy of a CUDA tensor waits for the device).
        feats = [
            torch.as_tensor(_require(sample, 'pred_feat')).detach().reshape(-1)
            for sample in data_samples
        ]
        if feats and len({(f.shape, f.device, f.dtype) for f in feats}) == 1:
            feats = list(torch.stack(feats).cpu().unbind(0))
        for sample, feat in zip(data_samples, feats):
            feat = feat.cpu()
            feat = feat.half() if self.store_fp16 else feat.float()
            modality = _require(sample, 'modality')
            if modality not in MODALITIES:
                raise ValueError(f'{type(self).__name__}: sample '
                                 f'{_get(sample, "img_path")!r} has modality '
                                 f'{modality!r}; expected one of '
                                 f'{MODALITIES}.')
            self.results.append(
                dict(
                    feat=feat,
                    pid=_scalar(_require(sample, 'gt_label'), 'gt_label'),
                    cam=_scalar(_require(sample, 'cam_id'), 'cam_id'),
                    modality=modality,
                    sample_idx=_scalar(
                        _require(sample, 'sample_idx'), 'sample_idx'),
                    img_path=_get(sample, 'img_path')))

    # ------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Score every direction and trial; see the class docstring.

        Args:
            results (list[dict]): What :meth:`process` stored, gathered from
                all ranks.

        Returns:
            dict[str, float]: Metric values in percent.
        """
        samples = _TestSamples(results, self.feat_norm)
        split = ProtocolSplit(self.protocol, samples.pid, samples.cam,
                              samples.modality, samples.img_path,
                              self.gallery_mode, self.llcm_vis2ir_mode)
        counts = {m: split.positions(m).size for m in MODALITIES}
        for mod in MODALITIES:  # every protocol crosses both modalities
            if counts[mod] == 0:
                collected = ', '.join(f'{m}={n}' for m, n in counts.items())
                raise ValueError(
                    f'{type(self).__name__}: no {mod!r} sample was '
                    f'collected, but protocol={self.protocol!r} with '
                    f'directions={self.directions} needs both modalities '
                    f'(collected: {collected}).')

        per_dir = {}
        for direction in self.directions:
            trials = [
                self._score_trial(samples, split, direction, t)
                for t in range(self.num_trials)
            ]
            per_dir[direction] = trials

        main = self.directions[0]
        metrics: Dict[str, float] = {}
        summary = {}
        for direction, trials in per_dir.items():
            mean, std = _aggregate(trials)
            summary[direction] = dict(
                trials=[_trial_record(t) for t in trials], mean=mean, std=std)
            self._log_table(direction, trials, mean, std)
            for key, value in mean.items():
                metrics[f'{direction}/{key}'] = value
            for key, value in std.items():
                metrics[f'{direction}/{key}_std'] = value
        metrics = {**summary[main]['mean'], **metrics}
        self.last_results = dict(
            protocol=self.protocol,
            gallery_mode=self.gallery_mode,
            num_trials=self.num_trials,
            main_direction=main,
            directions=summary)
        return metrics

    def _score_trial(self, samples: '_TestSamples', split: ProtocolSplit,
                     direction: str, trial: int) -> dict:
        """Query/gallery of one trial and direction, then its scores."""
        name = type(self).__name__
        try:
            q_idx, g_idx = split(direction, trial)
        except ValueError as e:
            raise ValueError(f'{name}: {e}') from e
        q_feat, g_feat = samples.feat[q_idx], samples.feat[g_idx]
        if self.rerank:
            distmat = re_ranking(q_feat, g_feat, **self.rerank_cfg)
        else:
            distmat = pairwise_distance(q_feat, g_feat, 'neg_dot')
        q_pid, g_pid = samples.pid[q_idx], samples.pid[g_idx]
        try:
            if self.protocol == REGDB:
                cmc, mAP, mINP = eval_regdb(distmat, q_pid, g_pid,
                                            self.max_rank)
            else:
                fn = eval_sysu if self.protocol == SYSU else eval_llcm
                cmc, mAP, mINP = fn(distmat, q_pid, g_pid, samples.cam[q_idx],
                                    samples.cam[g_idx], self.max_rank)
        except ValueError as e:  # also NoValidQueryError, RaggedCMCError
            raise type(e)(f'{name} (protocol='
                          f'{self.protocol!r}, direction={direction!r}, '
                          f'trial={trial}): {e}') from e
        return dict(
            trial=trial,
            num_query=int(q_idx.size),
            num_gallery=int(g_idx.size),
            cmc=cmc,
            mAP=mAP,
            mINP=mINP)

    def _log_table(self, direction: str, trials: List[dict], mean: dict,
                   std: dict) -> None:
        names = list(mean)
        header = ['trial', '#query', '#gallery'] + names
        rows = []
        for t in trials:
            rec = _trial_record(t)
            rows.append(
                [str(t['trial']),
                 str(t['num_query']),
                 str(t['num_gallery'])] + [f'{rec[n]:.2f}' for n in names])
        if len(trials) > 1:
            rows.append(['mean', '', ''] + [f'{mean[n]:.2f}' for n in names])
            rows.append(['std', '', ''] + [f'{std[n]:.2f}' for n in names])
        widths = [
            max(len(header[i]), *(len(r[i]) for r in rows))
            for i in range(len(header))
        ]

        def fmt(cells):
            return '| ' + ' | '.join(
                c.rjust(w) for c, w in zip(cells, widths)) + ' |'

        rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
        gallery = ('' if self.protocol == REGDB else
                   f', {self.gallery_mode}-shot gallery')
        lines = [
            f'{self.protocol} {direction} ({len(trials)} trial'
            f'{"s" if len(trials) > 1 else ""}{gallery}):', rule,
            fmt(header), rule
        ]
        lines += [fmt(r) for r in rows[:len(trials)]]
        if len(trials) > 1:
            lines += [rule] + [fmt(r) for r in rows[len(trials):]]
        lines.append(rule)
        summary = ', '.join(f'{n} {mean[n]:.2f} ± {std[n]:.2f}' for n in names)
        lines.append(f'{self.protocol} {direction} mean ± std: {summary}')
        MMLogger.get_current_instance().info('\n'.join(lines))


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def _require(sample, key: str):
    value = _get(sample, key)
    if value is None:
        raise KeyError(f'VIReIDMetric: data sample '
                       f'{_get(sample, "img_path")!r} has no {key!r}; the '
                       'model must put `pred_feat` and the dataset '
                       '`gt_label`, `cam_id`, `modality` and `sample_idx` '
                       'into every test data sample.')
    return value


def _get(sample, key: str):
    return sample.get(key, None) if hasattr(sample, 'get') else getattr(
        sample, key, None)


def _scalar(value, key: str) -> int:
    """An int from an int, numpy scalar or one-element tensor/array."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'VIReIDMetric: {key!r} must hold one value, '
                             f'got a tensor of shape {tuple(value.shape)}.')
        return int(value.reshape(-1)[0].item())
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f'VIReIDMetric: {key!r} must hold one value, got '
                         f'{value!r}.')
    return int(arr.reshape(-1)[0])


class _TestSamples:
    """The collected samples as arrays, in ``sample_idx`` order."""

    def __init__(self, results: List[dict], feat_norm: bool) -> None:
        items = sorted(results, key=lambda r: r['sample_idx'])
        idx = np.array([r['sample_idx'] for r in items], dtype=np.int64)
        modality = np.array([r['modality'] for r in items])
        for mod in MODALITIES:
            mod_idx = idx[modality == mod]
            dup = mod_idx[1:][mod_idx[1:] == mod_idx[:-1]]
            if dup.size:
                raise ValueError(
                    f'VIReIDMetric: sample_idx {int(dup[0])} occurs more '
                    f'than once among the {mod!r} samples; each test image '
                    'must be evaluated once (check the dataset/sampler).')
        if items:
            feat = torch.stack([r['feat'] for r in items]).float().numpy()
        else:
            feat = np.zeros((0, 0), dtype=np.float32)
        if feat_norm and feat.size:
            feat = l2_normalize(feat)
        self.feat = feat  # (N, D) float32
        self.pid = np.array([r['pid'] for r in items], dtype=np.int64)
        self.cam = np.array([r['cam'] for r in items], dtype=np.int64)
        self.modality = modality
        self.img_path = [r.get('img_path') for r in items]


def _aggregate(trials: List[dict]) -> Tuple[dict, dict]:
    """Reference-style means (sum / n, CMC summed in float32) and stds."""
    n = len(trials)
    cmc_sum = trials[0]['cmc']
    map_sum, minp_sum = trials[0]['mAP'], trials[0]['mINP']
    for t in trials[1:]:
        if t['cmc'].shape != cmc_sum.shape:
            raise ValueError(
                'VIReIDMetric: trials returned CMC curves of different '
                f'lengths ({cmc_sum.shape[0]} and {t["cmc"].shape[0]}); '
                'their galleries differ in size below max_rank.')
        cmc_sum = cmc_sum + t['cmc']
        map_sum = map_sum + t['mAP']
        minp_sum = minp_sum + t['mINP']
    cmc_mean = cmc_sum / n
    mean, std = {}, {}
    for k in _RANKS:
        if k <= cmc_mean.shape[0]:
            mean[f'Rank-{k}'] = float(cmc_mean[k - 1]) * 100
            std[f'Rank-{k}'] = float(
                np.std([float(t['cmc'][k - 1]) for t in trials])) * 100
    mean['mAP'] = float(map_sum / n) * 100
    mean['mINP'] = float(minp_sum / n) * 100
    std['mAP'] = float(np.std([float(t['mAP']) for t in trials])) * 100
    std['mINP'] = float(np.std([float(t['mINP']) for t in trials])) * 100
    return mean, std


def _trial_record(trial: dict) -> dict:
    cmc = trial['cmc']
    rec = dict(
        trial=int(trial['trial']),
        num_query=int(trial['num_query']),
        num_gallery=int(trial['num_gallery']),
        cmc=[float(v) * 100 for v in cmc])
    for k in _RANKS:
        if k <= cmc.shape[0]:
            rec[f'Rank-{k}'] = float(cmc[k - 1]) * 100
    rec['mAP'] = float(trial['mAP']) * 100
    rec['mINP'] = float(trial['mINP']) * 100
    return rec
