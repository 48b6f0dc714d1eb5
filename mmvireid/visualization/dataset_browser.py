# Copyright (c) mmvireid contributors. All rights reserved.
"""What the pipeline feeds the model (``tools/visualization/browse_dataset.py``).

* **train phase**: one grid per step of the train sampler. With the
  :class:`~mmvireid.datasets.CrossModalIdentitySampler` a step is ``P``
  identities x ``K`` visible images, then the same identities x ``K``
  infrared images aligned by position: the grid shows the visible row above
  the infrared row (position ``j`` above position ``j``), and a third row
  with the second visible view of two-view pipelines (CSDN's ``img_view2``).
* **test/val phase**: grids of consecutive samples in dataset order.

``mode``:

* ``'original'``: the images as loaded from disk;
* ``'transformed'``: the images after the whole pipeline (the model input,
  before normalisation by the data preprocessor);
* ``'pipeline'``: one grid per sample, or per aligned visible/infrared pair
  in the train phase, with the image after every transform
  (:class:`~mmvireid.datasets.transforms.ModalityDispatch` is opened up, so
  ``ChannelExchange``, ``ChannelAdapGray`` and the erasing show one by one).

Every tile is labelled with its modality, camera and identity (the train
label, and the person id read from the path where the layout has one).
"""
import copy
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from mmvireid.datasets import parse_reid_path
from mmvireid.datasets.transforms import ModalityDispatch
from mmvireid.registry import DATA_SAMPLERS, DATASETS
from mmvireid.structures import IR, MODALITY_LABELS, VIS

__all__ = [
    'MODES', 'PHASES', 'build_browse_dataset', 'sampler_steps',
    'inspect_sample', 'DatasetBrowser'
]

MODES = ('original', 'transformed', 'pipeline')
PHASES = ('train', 'val', 'test')
#: Frame colours (RGB) of visible and infrared tiles.
MODALITY_COLORS = {VIS: (30, 110, 220), IR: (200, 60, 20)}


def build_browse_dataset(cfg, phase: str):
    """The dataset of ``<phase>_dataloader``, with its pipeline, without
    the decoded-image cache (browsing a few images should not build it).

    Raises:
        KeyError: The config has no ``<phase>_dataloader.dataset`` (named).
    """
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {PHASES}, got {phase!r}.')
    loader = cfg.get(f'{phase}_dataloader')
    if not isinstance(loader, (dict, ConfigDict)) or not isinstance(
            loader.get('dataset'), (dict, ConfigDict)):
        raise KeyError(f'{phase}_dataloader.dataset: the config has no '
                       f'{phase} dataset to browse.')
    dataset_cfg = copy.deepcopy(loader['dataset'])
    if 'image_cache' in dataset_cfg:
        dataset_cfg['image_cache'] = None
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmvireid')):
        dataset = DATASETS.build(dataset_cfg)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def sampler_steps(cfg,
                  dataset,
                  num_steps: int,
                  seed: int = 0) -> Tuple[List[List[int]], Optional[tuple]]:
    """The first ``num_steps`` steps (batches of dataset indices) of the
    train sampler of ``cfg`` on ``dataset`` (epoch 0).

    Returns:
        tuple: ``(steps, pk)``: the index lists, and ``(P, K)`` for a
        sampler with ``num_ids`` / ``num_instances`` (visible half first,
        then the aligned infrared half), else None (steps of
        ``batch_size`` indices).
    """
    loader = cfg.train_dataloader
    sampler_cfg = copy.deepcopy(
        loader.get('sampler') or dict(type='DefaultSampler', shuffle=True))
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmvireid')):
        sampler = DATA_SAMPLERS.build(
            sampler_cfg, default_args=dict(dataset=dataset, seed=seed))
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(0)
    num_ids = getattr(sampler, 'num_ids', None)
    num_instances = getattr(sampler, 'num_instances', None)
    if num_ids is not None and num_instances is not None:
        pk, step = (int(num_ids), int(num_instances)), \
            2 * int(num_ids) * int(num_instances)
    else:
        pk, step = None, int(loader.get('batch_size', 16))
    stream = list(itertools.islice(iter(sampler), num_steps * step))
    steps = [stream[i:i + step] for i in range(0, len(stream), step)]
    return [s for s in steps if len(s) == step], pk


def _snapshot(img) -> Optional[np.ndarray]:
    """An RGB uint8 copy of a pipeline image (BGR arrays, CHW tensors)."""
    if isinstance(img, list):
        img = img[0] if img else None
    if img is None:
        return None
    if hasattr(img, 'numpy'):  # a packed C x H x W tensor
        img = img.detach().cpu().numpy()
        if img.ndim == 3:
            img = img.transpose(1, 2, 0)
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB


def inspect_sample(transforms: Sequence, results: dict) -> Tuple[List, dict]:
    """Run ``results`` through ``transforms``, recording the image after
    every step.

    :class:`ModalityDispatch` is opened up: the sample's own sub-pipeline
    runs transform by transform. A step that writes ``img_view2`` (a second
    view, e.g. CSDN's ``KeyMapper``) is recorded as ``'<name> (view 2)'``.
    The packing transform is not recorded (its output is the last image).

    Returns:
        tuple: ``(steps, results)``: ``[(name, RGB array)]`` and the final
        results (packed), or ``(steps, None)`` if a transform dropped it.
    """
    steps = []

    def run(ts, results):
        for t in ts:
            if isinstance(t, ModalityDispatch) and \
                    results.get('modality') in t.pipelines:
                results = run(t.pipelines[results['modality']].transforms,
                              results)
                if results is None:
                    return None
                continue
            img, view2 = results.get('img'), results.get('img_view2')
            results = t(results)
            if results is None:
                return None
            if 'inputs' in results:  # packed
                continue
            name = type(t).__name__
            new_view = results.get('img_view2') is not None and \
                results.get('img_view2') is not view2
            # a step that only made the second view (KeyMapper) shows that
            if 'img' in results and not (new_view and results['img'] is img):
                steps.append((name, _snapshot(results['img'])))
            if new_view:
                steps.append(
                    (f'{name} (view 2)', _snapshot(results['img_view2'])))
        return results

    results = run(transforms, results)
    return steps, results


class DatasetBrowser:
    """Draw grids of what a dataset's pipeline gives.

    Args:
        dataset: A built dataset (``get_data_info``, ``pipeline``).
        visualizer (VIReIDVisualizer): Draws the grids.
        mode (str): ``'original'``, ``'transformed'`` or ``'pipeline'``.
    """

    def __init__(self, dataset, visualizer, mode: str = 'transformed'):
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
        self.dataset = dataset
        self.visualizer = visualizer
        self.mode = mode

    # ------------------------------------------------------------------ #
    def sample(self, idx: int) -> dict:
        """Images and labels of dataset item ``idx`` in this mode:
        ``images`` (``[(name, RGB)]``), ``modality``, ``cam_id``, ``label``,
        ``pid``."""
        info = copy.deepcopy(self.dataset.get_data_info(idx))
        transforms = getattr(self.dataset.pipeline, 'transforms',
                             [self.dataset.pipeline])
        steps, _ = inspect_sample(transforms, dict(info))
        if not steps:
            raise ValueError(
                f'{type(self.dataset).__name__}[{idx}] '
                f'({info.get("img_path")}): the pipeline recorded no image '
                "(it needs 'img' in the results).")
        if self.mode == 'original':
            images = steps[:1]
        elif self.mode == 'transformed':
            images = [
                next(
                    s for s in reversed(steps)
                    if not s[0].endswith('(view 2)'))
            ]
            views = [s for s in steps if s[0].endswith('(view 2)')]
            images += views[-1:]
        else:
            images = steps
        pid = parse_reid_path(info.get('img_path') or '')['pid']
        return dict(
            images=images,
            modality=info.get('modality'),
            cam_id=info.get('cam_id'),
            label=info.get('gt_label'),
            pid=pid,
            img_path=info.get('img_path'))

    @staticmethod
    def label(sample: dict) -> str:
        """Two short lines: modality and camera, then the identity (the
        train label, and the person id of the path in brackets)."""
        head = MODALITY_LABELS.get(sample['modality'],
                                   str(sample['modality']))
        if sample['cam_id'] is not None:
            head += f' c{sample["cam_id"]}'
        ident = f'id {sample["label"]}'
        if sample['pid'] is not None and sample['pid'] != sample['label']:
            ident += f' ({sample["pid"]})'
        return f'{head}\n{ident}'

    @staticmethod
    def step_label(name: str, index: int) -> str:
        """A pipeline step's tile label: its number and a short name."""
        view2 = name.endswith('(view 2)')
        name = name.replace(' (view 2)', '')
        for long, short in (('LoadImageFromFile', 'Load'), ('Channel', ''),
                            ('KeyMapper', '')):
            name = name.replace(long, short)
        if view2:
            name = (name + ' ' if name else '') + 'view 2'
        if len(name) > 13:
            name = name[:12] + '.'
        return f'{index}\n{name}'

    def _color(self, sample: dict):
        return MODALITY_COLORS.get(sample['modality'], (140, 140, 140))

    # ------------------------------------------------------------------ #
    def step_grid(self, indices: Sequence[int], pk: Optional[tuple],
                  title: str) -> Dict[str, np.ndarray]:
        """Grid(s) of one sampler step: ``{suffix: RGB image}``.

        ``'original'`` / ``'transformed'``: one grid, the visible half above
        the aligned infrared half (plus the second visible views, if any).
        ``'pipeline'``: one grid per aligned pair (suffix ``_pair<j>``).
        """
        samples = [self.sample(i) for i in indices]
        if pk is None:
            return {'': self._flat_grid(samples, title)}
        half = len(samples) // 2
        vis, ir = samples[:half], samples[half:]
        if self.mode == 'pipeline':
            grids = {}
            for j, (v, r) in enumerate(zip(vis, ir)):
                rows = [[img for _, img in s['images']] for s in (v, r)]
                labels = [[
                    self.step_label(name, n)
                    for n, (name, _) in enumerate(s['images'])
                ] for s in (v, r)]
                colors = [[self._color(s)] * len(s['images']) for s in (v, r)]
                desc = ' / '.join(
                    self.label(s).replace('\n', ' ') for s in (v, r))
                grids[f'_pair{j:02d}'] = self.visualizer.draw_grid(
                    rows, labels, colors,
                    f'{title}, pair {j}, visible above infrared: {desc}')
            return grids
        rows = [[s['images'][0][1] for s in vis],
                [s['images'][0][1] for s in ir]]
        labels = [[self.label(s) for s in vis], [self.label(s) for s in ir]]
        colors = [[self._color(s) for s in vis], [self._color(s) for s in ir]]
        if all(len(s['images']) > 1 for s in vis):
            rows.append([s['images'][1][1] for s in vis])
            labels.append(
                ['view 2\n' + self.label(s).split('\n')[1] for s in vis])
            colors.append([self._color(s) for s in vis])
        p, k = pk
        return {
            '':
            self.visualizer.draw_grid(
                rows, labels, colors,
                f'{title}: P={p} ids x K={k}, visible (top) above their '
                'aligned infrared partners')
        }

    def _flat_grid(self,
                   samples: List[dict],
                   title: str,
                   per_row: int = 8) -> np.ndarray:
        tiles = [(s, n, name, img) for s in samples
                 for n, (name, img) in enumerate(s['images'])]
        rows, labels, colors = [], [], []
        for start in range(0, len(tiles), per_row):
            chunk = tiles[start:start + per_row]
            rows.append([img for _, _, _, img in chunk])
            labels.append([
                self.step_label(name, n)
                if self.mode == 'pipeline' else self.label(s)
                for s, n, name, _ in chunk
            ])
            colors.append([self._color(s) for s, _, _, _ in chunk])
        return self.visualizer.draw_grid(rows, labels, colors, title)

    def sample_grid(self, indices: Sequence[int], title: str) -> np.ndarray:
        """A grid of dataset items (test phase): 8 tiles per row; in
        ``'pipeline'`` mode every step of every item."""
        samples = [self.sample(i) for i in indices]
        if self.mode == 'pipeline':
            per_row = max(len(s['images']) for s in samples)
            title += ': ' + ', '.join(
                self.label(s).replace('\n', ' ') for s in samples)
        else:
            per_row = 8
        return self._flat_grid(samples, title, per_row)
