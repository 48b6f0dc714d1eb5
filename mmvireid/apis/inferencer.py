# Copyright (c) mmvireid contributors. All rights reserved.
"""``VIReIDInferencer``: features, gallery ranking and ranking images."""
import copy
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.fileio import load
from mmengine.registry import DefaultScope
from rich.progress import track

import mmvireid
from mmvireid.datasets import parse_reid_path
from mmvireid.evaluation.functional import rank_gallery, re_ranking
from mmvireid.registry import MODELS
from mmvireid.structures import (MODALITIES, VIS, check_protocol,
                                 protocol_keep_mask)
from mmvireid.utils import register_all_modules
from mmvireid.utils.checkpoint import load_model_checkpoint
from mmvireid.visualization import (VIReIDVisualizer, ranking_record,
                                    write_rankings)

__all__ = ['VIReIDInferencer', 'ReIDFeatures', 'init_model']

#: File extensions listed when a folder is given.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

InputType = Union[str, np.ndarray]


@dataclass
class ReIDFeatures:
    """Retrieval features of a set of images and what is known about them.

    Attributes:
        feats (Tensor): ``(N, D)`` float32 L2-normalised features (CPU).
        img_paths (list[str | None]): Image paths (None for array inputs).
        modalities (list[str]): ``'vis'`` / ``'ir'`` per image.
        cam_ids (list[int | None]): Camera numbers, when known.
        pids (list[int | None]): Person ids, when known.
        images (list[np.ndarray | None]): The BGR arrays of array inputs
            (kept for drawing), None for path inputs.
    """

    feats: torch.Tensor
    img_paths: List[Optional[str]]
    modalities: List[str]
    cam_ids: List[Optional[int]]
    pids: List[Optional[int]]
    images: List[Optional[np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def meta(self, i: int) -> dict:
        """JSON-serialisable description of image ``i``."""
        return dict(
            index=i,
            img_path=self.img_paths[i],
            pid=self.pids[i],
            cam_id=self.cam_ids[i],
            modality=self.modalities[i])


def _per_item(value, n: int, name: str) -> list:
    """Broadcast a scalar (or None) to ``n`` items; check a sequence."""
    if value is None or isinstance(value, (str, int, np.integer)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f'{name} has {len(value)} entries for {n} images; '
                         'give one value, or one per image.')
    return value


class VIReIDInferencer:
    """Extract retrieval features, rank galleries and draw ranking lists.

    Three lines from a trained model to ranking images::

        from mmvireid.apis import VIReIDInferencer
        inferencer = VIReIDInferencer('configs/clip_vireid_toy.py',
                                      weights='work_dirs/toy/epoch_30.pth')
        results = inferencer(query='data/toy_sysu/cam3/0004',
                             gallery='data/toy_sysu/cam1',
                             query_modality='ir', gallery_modality='vis',
                             out_dir='outputs/rankings')

    Step by step: :meth:`extract` gives :class:`ReIDFeatures`, :meth:`rank`
    the top-k matches per query, :meth:`save` the JSON and the PNGs.

    Inputs are image paths, folders (every image below them, recursively,
    sorted by path) or BGR ``uint8`` arrays (``mmcv.imread`` order), alone
    or in a list. They go through the config's test pipeline and the
    model's ``test_step`` in batches, with a progress bar; features are the
    model's ``predict`` output (L2-normalised), so scores are cosine
    similarities, exactly what the test metric ranks by.

    **Modality.** Models with a modality-specific stem (e.g. CSDN) need to
    know whether each image is visible or infrared: pass ``modality``
    (``'vis'`` / ``'ir'``, or one per image). For other models it does not
    change the features and defaults to ``'vis'``.

    **Identity and camera.** For paths in a dataset layout
    (``camC/PPPP/<file>``, RegDB's ``Visible|Thermal/<pid>/<file>``) they
    are read from the path (:func:`parse_reid_path`); ``pid`` / ``cam_id``
    arguments override them. They only label the results (correct / wrong
    match), drive the optional protocol filter, and feed the camera
    embedding of models that have one (SIE), which then requires them.

    Args:
        model (str | Config | dict): A config file, a loaded config, or a
            model name from ``model-index.yml`` (see :meth:`list_models`).
        weights (str, optional): Checkpoint to load (the file
            ``tools/train.py`` writes). Defaults to the model-index weights
            of a named model, else none (random weights, with a warning).
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
            Defaults to CUDA when available.
        batch_size (int): Images per forward pass. Defaults to 32.
        show_progress (bool): Show a progress bar. Defaults to True.
        cfg_options (dict, optional): Config overrides, as
            ``--cfg-options`` (e.g. ``{'model.flip_test': True}``).
        strict (bool): Refuse a checkpoint that does not fit the config's
            model (the default). False loads the tensors that fit and names
            the others in a warning. Defaults to True.
    """

    def __init__(self,
                 model: Union[str, Config, dict],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 batch_size: int = 32,
                 show_progress: bool = True,
                 cfg_options: Optional[dict] = None,
                 strict: bool = True) -> None:
        register_all_modules(init_default_scope=False)
        cfg, index_weights = self._load_config(model)
        if weights is None:
            weights = index_weights
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if 'model' not in cfg:
            raise KeyError('VIReIDInferencer: the config has no "model" '
                           'section.')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        self.cfg = cfg
        self.weights = weights
        self.batch_size = int(batch_size)
        self.show_progress = show_progress
        self.device = torch.device(
            device if device is not None else (
                'cuda' if torch.cuda.is_available() else 'cpu'))
        self.scope = cfg.get('default_scope', 'mmvireid')
        self.strict = strict
        self.model = self._init_model(cfg, weights)
        self._pipeline_cfg = self._test_pipeline_cfg(cfg)
        with DefaultScope.overwrite_default_scope(self.scope):
            self._path_pipeline = Compose(self._pipeline_cfg)
            # Array inputs are already decoded: skip the file loader.
            self._array_pipeline = Compose([
                t for t in self._pipeline_cfg
                if not str(t.get('type', '')).endswith('LoadImageFromFile')
            ])
        # The sets of the last rank() call, for drawing array inputs, and
        # its settings, for the header of rankings.json.
        self._last_sets: tuple = (None, None)
        self._last_rank: dict = {}

    # ------------------------------------------------------------------ #
    # construction
    # ------------------------------------------------------------------ #
    @staticmethod
    def _repo_dir() -> str:
        """The folder holding ``configs/`` and ``model-index.yml``: the
        repository of an editable install, else the package's ``.mim``."""
        package = osp.dirname(osp.abspath(mmvireid.__file__))
        repo = osp.dirname(package)
        if osp.isfile(osp.join(repo, 'model-index.yml')):
            return repo
        return osp.join(package, '.mim')

    @classmethod
    def _model_index(cls) -> List[dict]:
        root = cls._repo_dir()
        index_file = osp.join(root, 'model-index.yml')
        if not osp.isfile(index_file):
            raise FileNotFoundError(
                f'model-index.yml not found in "{root}": named models need '
                'an editable install or the files under mmvireid/.mim; pass '
                'a config file path instead.')
        models = []
        for meta in load(index_file).get('Import', []):
            for entry in load(osp.join(root, meta)).get('Models', []):
                entry = dict(entry)
                entry['Config'] = osp.join(root, entry['Config'])
                models.append(entry)
        return models

    @classmethod
    def list_models(cls, pattern: str = r'.*') -> List[str]:
        """Names in ``model-index.yml`` matching the regex ``pattern``."""
        return sorted(m['Name'] for m in cls._model_index()
                      if re.search(pattern, m['Name']))

    def _load_config(self, model) -> tuple:
        if isinstance(model, Config):
            return copy.deepcopy(model), None
        if isinstance(model, dict):
            return Config(copy.deepcopy(dict(model))), None
        if not isinstance(model, str):
            raise TypeError('model must be a config path, a Config, a dict '
                            f'or a model name, got {type(model).__name__}.')
        if osp.isfile(model):
            return Config.fromfile(model), None
        if model.endswith('.py'):
            raise FileNotFoundError(f'config file "{model}" does not exist.')
        for entry in self._model_index():
            if entry['Name'] == model:
                weights = entry.get('Weights') or None
                if isinstance(weights, list):
                    weights = weights[0] if weights else None
                return Config.fromfile(entry['Config']), weights
        raise ValueError(f'"{model}" is neither a config file nor a model '
                         'name of model-index.yml; known names: '
                         f'{self.list_models()}')

    def _init_model(self, cfg: Config, weights: Optional[str]):
        if weights is None:
            warnings.warn('VIReIDInferencer: no checkpoint given; the '
                          'features come from randomly initialised '
                          'weights.')
        model = init_model(cfg, weights, strict=self.strict,
                           scope=self.scope)
        return model.to(self.device).eval()

    @staticmethod
    def _test_pipeline_cfg(cfg: Config) -> List[dict]:
        try:
            pipeline = cfg.test_dataloader.dataset.pipeline
        except AttributeError:
            raise KeyError('VIReIDInferencer: the config has no '
                           'test_dataloader.dataset.pipeline to prepare '
                           'images with.') from None
        pipeline = [copy.deepcopy(dict(t)) for t in pipeline]
        first = str(pipeline[0].get('type', '')) if pipeline else ''
        if not first.endswith('LoadImageFromFile'):
            raise ValueError('VIReIDInferencer: the test pipeline must start '
                             'with LoadImageFromFile, got '
                             f'{pipeline[:1]}.')
        return pipeline

    # ------------------------------------------------------------------ #
    # inputs
    # ------------------------------------------------------------------ #
    @staticmethod
    def _expand(inputs) -> List[InputType]:
        """Flatten paths, folders (recursive, sorted) and arrays."""
        if isinstance(inputs, (str, np.ndarray)):
            inputs = [inputs]
        out: List[InputType] = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                out.append(item)
            elif isinstance(item, str) and osp.isdir(item):
                found = []
                for root, dirs, files in os.walk(item):
                    # Hidden files (.DS_Store, macOS '._x.jpg' copies) and
                    # folders are never images, whatever their extension.
                    dirs[:] = [d for d in dirs if not d.startswith('.')]
                    found += [
                        osp.join(root, f) for f in files
                        if f.lower().endswith(IMG_EXTENSIONS)
                        and not f.startswith('.')
                    ]
                if not found:
                    raise FileNotFoundError(
                        f'the folder "{item}" holds no image '
                        f'({", ".join(IMG_EXTENSIONS)}).')
                out += sorted(found)
            elif isinstance(item, str):
                if not osp.isfile(item):
                    raise FileNotFoundError(f'image "{item}" does not exist.')
                out.append(item)
            else:
                raise TypeError('inputs must be image paths, folders or '
                                'numpy arrays, got '
                                f'{type(item).__name__}.')
        if not out:
            raise ValueError('no input image given.')
        return out

    def _encoder_flags(self) -> tuple:
        encoder = getattr(self.model, 'image_encoder', None)
        return (bool(getattr(encoder, 'modality_specific_stem',
                             False)), getattr(encoder, 'cam_embed', None)
                is not None)

    # ------------------------------------------------------------------ #
    # public API
    # ------------------------------------------------------------------ #
    @torch.no_grad()
    def extract(self,
                inputs: Union[InputType, Sequence[InputType]],
                modality: Union[None, str, Sequence[str]] = None,
                cam_id: Union[None, int, Sequence[Optional[int]]] = None,
                pid: Union[None, int, Sequence[Optional[int]]] = None,
                parse_path: bool = True,
                batch_size: Optional[int] = None) -> ReIDFeatures:
        """Retrieval features of images.

        Args:
            inputs: An image path, a folder, a BGR array, or a list of them.
            modality (str | Sequence[str], optional): ``'vis'`` / ``'ir'``
                for all images or one per image. Required by models with a
                modality-specific stem; defaults to ``'vis'`` otherwise.
            cam_id (int | Sequence[int], optional): Camera numbers;
                override those read from the paths.
            pid (int | Sequence[int], optional): Person ids; override those
                read from the paths.
            parse_path (bool): Read person ids and cameras from dataset-style
                paths (:func:`parse_reid_path`). Defaults to True.
            batch_size (int, optional): Overrides the instance's.

        Returns:
            ReIDFeatures: ``feats`` is ``(N, D)``, in input order (folders
            expanded in sorted path order).
        """
        items = self._expand(inputs)
        n = len(items)
        has_stem, has_sie = self._encoder_flags()
        if modality is None and has_stem:
            raise ValueError(
                'this model has a modality-specific stem: pass modality= '
                f'one of {MODALITIES} (or one per image) to extract().')
        modalities = [
            VIS if m is None else m
            for m in _per_item(modality, n, 'modality')
        ]
        bad = sorted({m for m in modalities if m not in MODALITIES})
        if bad:
            raise ValueError(
                f'modality must be one of {MODALITIES}, got {bad}.')
        cams = _per_item(cam_id, n, 'cam_id')
        pids = _per_item(pid, n, 'pid')
        for i, item in enumerate(items):
            if parse_path and isinstance(item, str):
                parsed = parse_reid_path(item)
                cams[i] = parsed['cam_id'] if cams[i] is None else cams[i]
                pids[i] = parsed['pid'] if pids[i] is None else pids[i]
        cams = [None if c is None else int(c) for c in cams]
        pids = [None if p is None else int(p) for p in pids]
        # Camera ids reach the model only when every image has one: a batch
        # cannot mix images with and without them.
        pass_cams = all(c is not None for c in cams)
        if has_sie and not pass_cams:
            missing = [i for i, c in enumerate(cams) if c is None]
            raise ValueError(
                'this model has a camera embedding (SIE) and needs cam_id '
                f'for every image; {len(missing)} have none (first: '
                f'{_name(items[missing[0]])}). Pass cam_id=...')

        batch_size = batch_size or self.batch_size
        feats: List[torch.Tensor] = []
        starts = range(0, n, batch_size)
        if self.show_progress and n > batch_size:
            starts = track(starts, description='Extracting features')
        for start in starts:
            batch = [
                self._prepare(items[i], modalities[i],
                              cams[i] if pass_cams else None)
                for i in range(start, min(start + batch_size, n))
            ]
            outputs = self.model.test_step(pseudo_collate(batch))
            feats += [o.pred_feat.detach().float().cpu() for o in outputs]
        return ReIDFeatures(
            feats=torch.stack(feats),
            img_paths=[i if isinstance(i, str) else None for i in items],
            modalities=modalities,
            cam_ids=cams,
            pids=pids,
            images=[i if isinstance(i, np.ndarray) else None for i in items])

    def _prepare(self, item: InputType, modality: str,
                 cam: Optional[int]) -> dict:
        results: Dict[str, Any] = dict(modality=modality, sample_idx=0)
        if cam is not None:
            results['cam_id'] = cam
        if isinstance(item, str):
            results['img_path'] = item
            return self._path_pipeline(results)
        img = item
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        results.update(
            img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return self._array_pipeline(results)

    def rank(self,
             query: Union[ReIDFeatures, InputType, Sequence[InputType]],
             gallery: Union[ReIDFeatures, InputType, Sequence[InputType]],
             topk: Optional[int] = 10,
             protocol: Optional[str] = None,
             query_modality: Union[None, str, Sequence[str]] = None,
             gallery_modality: Union[None, str, Sequence[str]] = None,
             rerank: Union[bool, dict] = False) -> List[dict]:
        """Rank the gallery for every query.

        Args:
            query, gallery: :class:`ReIDFeatures` from :meth:`extract`, or
                inputs to extract (paths, folders, arrays).
            topk (int, optional): Matches per query; None keeps all.
                Defaults to 10.
            protocol (str, optional): ``'sysu'`` / ``'llcm'`` / ``'regdb'``
                applies that protocol's gallery filter (needs cameras, and
                for LLCM person ids); None keeps every gallery item.
            query_modality, gallery_modality: ``modality`` for inputs that
                still need extracting.
            rerank (bool | dict): Order the matches by k-reciprocal
                re-ranked distances (:func:`~mmvireid.evaluation.re_ranking`
                over these queries and gallery; True for its defaults
                ``k1=20, k2=6, lambda_value=0.3``, or a dict of them), as
                ``VIReIDMetric(rerank=True)`` scores. ``score`` stays the
                cosine similarity. Defaults to False.

        Returns:
            list[dict]: One dict per query: ``query`` (``index``,
            ``img_path``, ``pid``, ``cam_id``, ``modality``), ``matches``
            (best first: the same keys plus ``rank`` (1-based), ``score``
            (cosine similarity) and ``correct`` (same person id as the query;
            None when either id is unknown)) and ``first_correct_rank``
            (rank of the first correct match among those returned, None if
            there is none or ids are unknown).
        """
        if protocol is not None:
            check_protocol(protocol)
        if not isinstance(query, ReIDFeatures):
            query = self.extract(query, modality=query_modality)
        if not isinstance(gallery, ReIDFeatures):
            gallery = self.extract(gallery, modality=gallery_modality)
        keep = None
        if protocol is not None:
            try:
                keep = protocol_keep_mask(protocol, query.pids, query.cam_ids,
                                          gallery.pids, gallery.cam_ids)
            except ValueError as e:
                raise ValueError(
                    f'protocol filtering: {e} Pass pid= / cam_id= to '
                    'extract(), use image paths in the dataset layout '
                    '(".../camN/PPPP/file"), or protocol=None.') from e
        if not isinstance(rerank, (bool, dict)):
            raise TypeError('rerank must be a bool or a dict of re_ranking '
                            f'arguments, got {type(rerank).__name__}.')
        distances = None
        if rerank is not False:
            distances = re_ranking(query.feats, gallery.feats,
                                   **({} if rerank is True else rerank))
        ranked = rank_gallery(
            query.feats, gallery.feats, topk, keep, distances=distances)
        results = []
        for qi, matches in enumerate(ranked):
            q_pid = query.pids[qi]
            out = []
            for rank, (gi, score) in enumerate(matches, start=1):
                g_pid = gallery.pids[gi]
                correct = None if q_pid is None or g_pid is None \
                    else bool(q_pid == g_pid)
                out.append(
                    dict(
                        gallery.meta(gi),
                        rank=rank,
                        score=score,
                        correct=correct))
            record = ranking_record(query.meta(qi), out)
            del record['image']  # set by save() when drawn
            results.append(record)
        self._last_sets = (query, gallery)
        self._last_rank = dict(
            protocol=protocol,
            filtered=protocol is not None,
            rerank=None if rerank is False else
            ({} if rerank is True else dict(rerank)),
            topk=topk,
            num_query=len(query),
            num_gallery=len(gallery))
        return results

    def save(self,
             results: List[dict],
             out_dir: str,
             query: Optional[ReIDFeatures] = None,
             gallery: Optional[ReIDFeatures] = None,
             draw: bool = True,
             max_images: Optional[int] = None,
             visualizer: Optional[dict] = None) -> List[str]:
        """Write ``rankings.json`` and one ranking PNG per query.

        ``rankings.json`` comes from :func:`~mmvireid.visualization.
        rankings_file.write_rankings`, the writer ``tools/test.py
        --show-dir`` uses too:
        a header (``source``, ``config``, ``weights``, the last
        :meth:`rank` call's ``protocol``, ``rerank``, ``topk``, ...) and,
        per query, ``query``, ``matches``, ``first_correct_rank`` and
        ``image`` (the PNG, None when not drawn).

        Args:
            results (list[dict]): The output of :meth:`rank`.
            out_dir (str): Output folder (created).
            query, gallery (ReIDFeatures, optional): The sets ranked, needed
                only to draw array inputs; default to the last
                :meth:`rank` call's.
            draw (bool): Write the PNGs. Defaults to True.
            max_images (int, optional): Draw only the first ``max_images``
                queries. Defaults to None (all).
            visualizer (dict, optional): :class:`VIReIDVisualizer` arguments
                (``tile_size``, ``font_size``, ...).

        Returns:
            list[str]: The files written (JSON first).
        """
        os.makedirs(out_dir, exist_ok=True)
        shown = results if max_images is None else results[:max_images]
        images = {}
        for res in shown if draw else []:
            q = res['query']
            stem = osp.splitext(osp.basename(q['img_path']))[0] \
                if q['img_path'] else 'array'
            images[id(res)] = osp.join(out_dir,
                                       f'rank_{q["index"]:05d}_{stem}.png')
        # the one writer of rankings.json (tools/test.py --show-dir too)
        json_file = write_rankings(
            out_dir,
            [dict(r, image=images.get(id(r))) for r in results],
            source='VIReIDInferencer',
            config=getattr(self.cfg, 'filename', None),
            weights=self.weights,
            **self._last_rank)
        written = [json_file]
        if not draw:
            return written
        if query is None or gallery is None:
            query = self._last_sets[0] if query is None else query
            gallery = self._last_sets[1] if gallery is None else gallery
        vis = VIReIDVisualizer(
            name=f'vireid_inferencer_{id(self)}', **(visualizer or {}))
        for res in shown:
            q = res['query']
            q_img = _drawable(q, query)
            g_imgs = [_drawable(m, gallery) for m in res['matches']]
            out_file = images[id(res)]
            vis.add_ranking(
                f'rank_{q["index"]}',
                q_img,
                g_imgs,
                query_meta=q,
                gallery_meta=res['matches'],
                out_file=out_file,
                to_backends=False)
            written.append(out_file)
        return written

    def __call__(self,
                 query: Union[ReIDFeatures, InputType, Sequence[InputType]],
                 gallery: Union[ReIDFeatures, InputType, Sequence[InputType]],
                 topk: Optional[int] = 10,
                 protocol: Optional[str] = None,
                 query_modality: Union[None, str, Sequence[str]] = None,
                 gallery_modality: Union[None, str, Sequence[str]] = None,
                 out_dir: Optional[str] = None,
                 draw: bool = True,
                 max_images: Optional[int] = None,
                 rerank: Union[bool, dict] = False) -> List[dict]:
        """Extract, rank and (with ``out_dir``) save; see :meth:`rank` and
        :meth:`save`. Returns the :meth:`rank` results."""
        results = self.rank(
            query,
            gallery,
            topk=topk,
            protocol=protocol,
            query_modality=query_modality,
            gallery_modality=gallery_modality,
            rerank=rerank)
        if out_dir is not None:
            # save() draws the sets rank() just used
            self.save(results, out_dir, draw=draw, max_images=max_images)
        return results


# ---------------------------------------------------------------------- #
def init_model(cfg: Config,
               checkpoint: Optional[str] = None,
               strict: bool = True,
               scope: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` and load a checkpoint for inference or export.

    With a checkpoint, the ``pretrained`` keys are dropped first: the
    checkpoint holds every weight, so no CLIP weights are downloaded.

    Args:
        cfg (Config): The config.
        checkpoint (str, optional): Local checkpoint; None keeps the
            initialisation (random, or ``pretrained``).
        strict (bool): Refuse a checkpoint that does not fit the model
            (:class:`~mmvireid.utils.checkpoint.CheckpointMismatchError`
            naming the missing, unexpected and reshaped tensors). False
            loads what fits and names the rest in a warning.
        scope (str, optional): Default registry scope to build in; defaults
            to ``cfg.default_scope`` or ``'mmvireid'``.

    Returns:
        nn.Module: The model on the CPU, in eval mode.
    """
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint "{checkpoint}" does not exist.')
    model_cfg = copy.deepcopy(cfg.model)
    if checkpoint is not None:
        _drop_pretrained(model_cfg)
    with DefaultScope.overwrite_default_scope(
            scope or cfg.get('default_scope', 'mmvireid')):
        model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint, strict=strict)
    return model.eval()


def _drop_pretrained(cfg) -> None:
    """Set every ``pretrained`` key of a (nested) model config to None."""
    if isinstance(cfg, (dict, ConfigDict)):
        for key in list(cfg.keys()):
            if key == 'pretrained':
                cfg[key] = None
            else:
                _drop_pretrained(cfg[key])
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            _drop_pretrained(item)


def _name(item: InputType) -> str:
    return item if isinstance(item, str) else 'an array input'


def _drawable(meta: dict, feats: Optional[ReIDFeatures]):
    """Path, or RGB array for array inputs, of a ranked image."""
    if meta['img_path'] is not None:
        return meta['img_path']
    if feats is None or not feats.images or feats.images[meta['index']] is \
            None:
        raise ValueError('cannot draw an array input without its '
                         'ReIDFeatures; pass query= and gallery= to save().')
    return feats.images[meta['index']][..., ::-1]  # BGR -> RGB
