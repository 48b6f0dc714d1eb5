# Copyright (c) mmvireid contributors. All rights reserved.
"""Benchmark the training step of every stage of a config, side by side with
a reference-style step, and the data loader alone.

For each stage of ``train_cfg.stages`` (entered in order, as training does),
the script times warm ``model.train_step`` calls on synthetic batches of the
config's real shapes (images made by the config's own train pipeline from
random pixels; cached features of the width the model really caches), in two
variants built from the same config, in the same process, on the same
batches:

* ``mmvireid``: the config as it trains — mixed precision if ``--amp`` (the
  default on CUDA: ``bf16``), channels-last RN trunk where the config sets it,
  torch's fused optimizer on CUDA, losses kept on the device (one host sync
  after the timed steps). Prompt stages step on cached features, as
  :class:`StageSwitchHook` feeds them.
* ``reference-style``: what the public VI-ReID code does — fp32, no
  channels-last, torch's default (unfused) optimizer step, ``loss.item()``
  of every logged loss each step, the text encoder over all 77 token
  positions; prompt stages re-run the frozen image encoder over the images
  of every batch instead of reading a feature cache.

Both enter every stage as training does (:func:`enter_stage`, the model's
own ``switch_stage``), and every extraction goes through the feature-cache
code of training: the mmvireid row's cached batch is the first batch of the
loader :func:`build_feature_cache` makes from synthetic images (in the
stage's ``feature_cache.mode``), and the reference-style row extracts with
:func:`extract_batch_features`.

It prints img/s (features/s for prompt stages) of both, their ratio, the peak
GPU memory of each, and — unless ``--skip-loader`` — the img/s of the train
data loader alone (the config's dataset, workers and pipeline; generated
toy data in the config's layout when the dataset is not on disk). With
``--out`` the numbers are also written as JSON (docs/en/benchmarks.md is made
from these files).

Pretrained weights are never loaded (random init is as fast and needs no
download).

Examples::

    # on a GPU: the CSDN and EEES SYSU recipes in bf16 (the default on CUDA)
    python tools/analysis_tools/benchmark_train.py configs/csdn_sysu.py
    python tools/analysis_tools/benchmark_train.py configs/eees_sysu.py \\
        --amp fp16 --out work_dirs/bench/eees_fp16.json

    # CPU, tiny config, seconds (what CI runs)
    python tools/analysis_tools/benchmark_train.py configs/clip_vireid_toy.py \\
        --device cpu --warmup 1 --iters 2 --loader-batches 2
"""
import argparse
import copy
import importlib.util
import json
import os
import os.path as osp
import platform
import sys
import tempfile
import time
from functools import partial
from typing import Callable, ContextManager, Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmvireid.datasets.feature_cache import (build_feature_cache,
                                             extract_batch_features)
from mmvireid.datasets.samplers import CrossModalIdentitySampler
from mmvireid.engine.hooks import enter_stage
from mmvireid.registry import MODELS
from mmvireid.structures import MODALITIES, modality_id
from mmvireid.utils import register_all_modules
from mmvireid.utils.fileio import atomic_write
from mmvireid.utils.tool_utils import (UserInputError, apply_amp,
                                       run_or_explain,
                                       stage_optim_wrapper_cfgs)

#: dataset type -> layout of tools/dataset_converters/make_toy_vireid.py
TOY_LAYOUTS = dict(
    SYSUMM01Dataset='sysu', RegDBDataset='regdb', LLCMDataset='llcm')
#: transforms that read the image file; the synthetic batches start after
LOADING = ('LoadImageFromFile', 'mmcv.LoadImageFromFile',
           'mmvireid.LoadImageFromFile')
AMP_DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time the training step of every stage of CONFIG against '
        'a reference-style fp32 step, and the train data loader alone.')
    parser.add_argument('config', help='train config file')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--amp',
        choices=['bf16', 'fp16', 'none'],
        default=None,
        help='autocast dtype of the mmvireid row (default: bf16 on CUDA, '
        'none on CPU)')
    parser.add_argument(
        '--stages', nargs='+', help='only time these stages (all are still '
        'entered in order)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed steps per stage and variant')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed steps per stage and variant')
    parser.add_argument(
        '--batch-size', type=int,
        help='override the image batch (train_dataloader.batch_size, must '
        'stay a multiple of 2 x num_instances)')
    parser.add_argument('--skip-baseline', action='store_true',
                        help='time the mmvireid row only')
    parser.add_argument('--skip-loader', action='store_true',
                        help='do not time the data loader')
    parser.add_argument('--loader-only', action='store_true',
                        help='time the data loader only (no model is built)')
    parser.add_argument('--loader-batches', type=int, default=20,
                        help='timed batches of the data loader')
    parser.add_argument('--num-workers', type=int,
                        help='override train_dataloader.num_workers for '
                        'the loader row')
    parser.add_argument(
        '--toy-img-size', type=int, nargs=2, default=(288, 144),
        metavar=('H', 'W'),
        help='image size of the generated data when the dataset is missing '
        '(default 288 144)')
    parser.add_argument('--out', help='also write the results as JSON here')
    parser.add_argument(
        '--markdown', action='store_true',
        help='also print the rows as a markdown table (docs/en/benchmarks.md)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    args = parser.parse_args(argv)
    if args.amp is None:
        args.amp = 'bf16' if str(args.device).startswith('cuda') else 'none'
    if args.loader_only and args.skip_loader:
        parser.error('--loader-only and --skip-loader exclude each other')
    if args.iters < 1 or args.warmup < 0 or args.loader_batches < 1:
        parser.error('--iters and --loader-batches must be >= 1, --warmup '
                     '>= 0')
    return args


# --------------------------------------------------------------------------
# Config helpers
# --------------------------------------------------------------------------
def _set_key(node, key: str, value, types: Optional[tuple] = None) -> None:
    """Set ``key`` to ``value`` in the dicts of ``node`` (recursively): those
    holding ``key`` already or, with ``types``, those whose ``type`` is one
    of ``types``."""
    if isinstance(node, dict):
        if types is None:
            hit = key in node
        else:
            hit = str(node.get('type', '')).split('.')[-1] in types
        if hit:
            node[key] = value
        for k, v in node.items():
            if k != key:
                _set_key(v, key, value, types)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _set_key(item, key, value, types)


def variant_cfg(cfg: Config, reference: bool, amp: str) -> Config:
    """The config of one benchmark variant (a deep copy).

    ``reference=True``: fp32, channels-last off, unfused optimizers, the
    full 77-token text context.
    Otherwise the config as given, with ``--amp`` (``apply_amp``) unless
    ``amp`` is ``'none'``. Pretrained weights are switched off in both.
    """
    cfg = copy.deepcopy(cfg)
    _set_key(cfg.model, 'pretrained', None)
    if not reference:
        if amp != 'none':
            apply_amp(cfg, amp)
        return cfg
    for ow in stage_optim_wrapper_cfgs(cfg.optim_wrapper):
        ow['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            ow.pop(key, None)
        # torch's default step (foreach on CUDA), as the references get
        ow.setdefault('optimizer', {})['fused'] = False
    _set_key(cfg.model, 'channels_last', False)
    # the references run the text encoder on all 77 positions
    _set_key(cfg.model, 'truncate_after_eot', False,
             types=('IDPromptLearner', 'CLIPTextEncoder'))
    return cfg


def pipeline_after_loading(pipeline: List[dict]) -> List[dict]:
    """The transforms of ``pipeline`` after its file loading."""
    pipeline = list(pipeline)
    while pipeline and pipeline[0].get('type') in LOADING:
        pipeline.pop(0)
    return pipeline


def synthetic_samples(pipeline: List[dict], num_ids: int, num_instances: int,
                      seed: int, img_size=(288, 144)) -> List[dict]:
    """Run ``pipeline`` (minus file loading) on random images laid out like
    one :class:`CrossModalIdentitySampler` step: ``num_ids x num_instances``
    visible samples, then the same identities infrared.

    Returns:
        list[dict]: Packed samples (``inputs``, ``data_samples``).
    """
    rng = np.random.default_rng(seed)
    compose = Compose(pipeline_after_loading(pipeline))
    samples = []
    labels = np.repeat(np.arange(num_ids), num_instances)
    for m, modality in enumerate(MODALITIES):
        for j, label in enumerate(labels):
            idx = m * len(labels) + j
            img = rng.integers(0, 256, (*img_size, 3), dtype=np.uint8)
            results = dict(
                img=img,
                img_shape=img.shape[:2],
                ori_shape=img.shape[:2],
                img_path=f'synthetic/{modality}/{idx:05d}.jpg',
                gt_label=int(label),
                modality=modality,
                cam_id=1 + m,
                sample_idx=idx,
                text=f'A person number {int(label)} in a photo.')
            out = compose(results)
            if out is None:
                raise RuntimeError('the train pipeline dropped a synthetic '
                                   'sample')
            samples.append(out)
    return samples


class _SyntheticTrainSet:
    """What ``prepare_stage_data`` reads of a train set: item texts."""

    def __init__(self, num: int) -> None:
        self.num = num

    def __len__(self) -> int:
        return self.num

    def get_data_info(self, idx: int) -> dict:
        return dict(text=f'A person number {idx % 97} in a photo.',
                    img_path=f'synthetic/{idx:05d}.jpg')


class _SyntheticCacheSet(Dataset):
    """Packed synthetic samples, read by :func:`build_feature_cache` as it
    reads the train set with the extraction pipeline (the labels and
    modalities let a :class:`CrossModalIdentitySampler` draw from it)."""

    def __init__(self, samples: List[dict]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict:
        return self.samples[idx]

    def get_labels(self) -> List[int]:
        return [int(s['data_samples'].gt_label[0]) for s in self.samples]

    def get_modalities(self) -> List[str]:
        return [s['data_samples'].modality for s in self.samples]


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _to_floats(log_vars: Dict) -> Dict[str, float]:
    return {
        k: float(v.item() if isinstance(v, torch.Tensor) else v)
        for k, v in log_vars.items()
    }


def time_steps(step, warmup: int, iters: int, device: torch.device,
               items_per_step: int, sync_each_step: bool) -> dict:
    """Run ``step()`` ``warmup + iters`` times; time the last ``iters``.

    ``step`` returns the log vars of one training step. The reference style
    turns them into Python floats every step (``sync_each_step``); otherwise
    they stay on the device and are read once, after the timed steps.
    """
    for _ in range(warmup):
        out = step()
        if sync_each_step:
            _to_floats(out)
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    outs = []
    start = time.perf_counter()
    for _ in range(iters):
        out = step()
        if sync_each_step:
            out = _to_floats(out)
        outs.append(out)
    last = _to_floats(outs[-1])  # the one sync of the fast path
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 \
        if device.type == 'cuda' else None
    bad = [k for k, v in last.items() if k.startswith('loss') and
           not np.isfinite(v)]
    if bad:
        raise FloatingPointError(f'non-finite losses {bad} in the timed steps')
    return dict(
        items_per_s=items_per_step * iters / seconds,
        step_ms=1000 * seconds / iters,
        peak_mem_mib=peak,
        last_losses={k: v for k, v in last.items() if k.startswith('loss')})


class StageBench:
    """Builds one variant's model and optimizers and times its stages."""

    def __init__(self, cfg: Config, variant: str, device: torch.device,
                 amp: str, args) -> None:
        self.cfg = cfg
        self.variant = variant
        self.reference = variant == 'reference-style'
        self.device = device
        self.amp = amp
        self.args = args
        torch.manual_seed(args.seed)
        self.model = MODELS.build(cfg.model)
        self.model.init_weights()
        self.model.to(device)
        self.model.train()
        # the stage wrappers are built once, as the runner does
        self.optim_wrapper = build_optim_wrapper(self.model, cfg.optim_wrapper)
        sampler = cfg.train_dataloader.sampler
        self.num_ids = int(sampler.get('num_ids', 4))
        self.num_instances = int(sampler.get('num_instances', 4))
        batch_size = args.batch_size or cfg.train_dataloader.batch_size
        step = 2 * self.num_instances
        if batch_size % step:
            raise UserInputError(
                f'batch size {batch_size} is not a multiple of 2 x '
                f'num_instances = {step}')
        self.num_ids = batch_size // step
        train_pipeline = cfg.train_dataloader.dataset.pipeline
        self.image_batch = pseudo_collate(
            synthetic_samples(train_pipeline, self.num_ids,
                              self.num_instances, args.seed,
                              tuple(args.toy_img_size)))
        if device.type == 'cuda':
            # as a loader with pin_memory=True hands them over (both rows)
            self.image_batch['inputs'] = [
                t.pin_memory() for t in self.image_batch['inputs']
            ]

    def _cache_pipeline(self, cache_cfg: dict) -> List[dict]:
        pipeline = cache_cfg.get('pipeline')
        if pipeline is None:
            pipeline = self.cfg.val_dataloader.dataset.pipeline
        return pipeline

    def _cache_samples(self, cache_cfg: dict) -> List[dict]:
        """Distinct synthetic images through the cache pipeline: enough of
        each modality for one full cache batch in every mode."""
        per = int(cache_cfg.get('batch_size', 64))
        num_ids = -(-per // self.num_instances)
        return synthetic_samples(
            self._cache_pipeline(cache_cfg), num_ids, self.num_instances,
            self.args.seed + 1, tuple(self.args.toy_img_size))

    def _image_batch(self, samples: List[dict], cache_cfg: dict) -> dict:
        """The images of one cache batch, as the reference-style step reads
        them every step: ``[B visible; B infrared]`` partners in
        ``'paired'`` mode, else ``batch_size`` images of the kept
        modalities, split evenly (the order times the same)."""
        mode = cache_cfg.get('mode', 'shuffled')
        per = int(cache_cfg.get('batch_size', 64))
        by_modality = {
            m: [s for s in samples if s['data_samples'].modality == m]
            for m in MODALITIES
        }
        if mode == 'paired':
            chosen = by_modality[MODALITIES[0]][:per] + \
                by_modality[MODALITIES[1]][:per]
        else:
            kept = [
                m for m in MODALITIES
                if m in (cache_cfg.get('modalities') or MODALITIES)
            ]
            counts = [per // len(kept)] * len(kept)
            counts[0] += per - sum(counts)
            chosen = [
                s for m, n in zip(kept, counts) for s in by_modality[m][:n]
            ]
        return pseudo_collate(chosen)

    def _cached_batch(self, stage, cache_cfg: dict, samples: List[dict]):
        """The first batch of the loader :func:`build_feature_cache` makes
        from ``samples`` in the stage's mode (the ``'paired'`` and
        ``'sampled'`` modes cache a draw of an identity sampler with the
        config's ``num_instances``)."""
        cache_set = _SyntheticCacheSet(samples)
        sampler = None
        if cache_cfg.get('mode', 'shuffled') != 'shuffled':
            num_ids = len(samples) // (2 * self.num_instances)
            sampler = CrossModalIdentitySampler(
                cache_set,
                num_ids=min(self.num_ids, num_ids),
                num_instances=self.num_instances,
                seed=self.args.seed)
        loader = build_feature_cache(
            self.model,
            # in-memory samples: loader workers would only add start-up
            dict(cache_cfg, num_workers=0),
            cache_set,
            sampler,
            stage=stage['name'],
            seed=self.args.seed,
            autocast=self._autocast(),
            progress=False)
        return next(iter(loader))

    def _autocast(self) -> Optional[Callable[[], ContextManager]]:
        """The extraction's autocast: the row's precision (fp32 for the
        reference style)."""
        if self.reference or self.amp == 'none':
            return None
        return partial(
            torch.autocast, self.device.type, dtype=AMP_DTYPES[self.amp])

    def _extract(self, images: dict) -> torch.Tensor:
        """``[B, D]`` cache features of ``images``, as training extracts
        them (eval mode, no grad, fp32 on the host)."""
        return extract_batch_features(self.model, images, self._autocast())

    def run_stage(self, stage) -> Optional[dict]:
        name = stage['name']
        enter_stage(self.model, name,
                    _SyntheticTrainSet(len(self.image_batch['inputs'])))
        timed = not self.args.stages or name in self.args.stages
        cache_cfg = stage.get('feature_cache')
        wrapper = self.optim_wrapper
        if cache_cfg:
            samples = self._cache_samples(cache_cfg)
            images = self._image_batch(samples, cache_cfg)
            if self.reference:
                image_samples = images['data_samples']
                targets = dict(
                    gt_label=torch.cat([s.gt_label for s in image_samples]),
                    modality=torch.tensor(
                        [modality_id(s.modality) for s in image_samples]))
                items = len(images['inputs'])

                def step():
                    # re-run the frozen encoder on this step's images
                    return self.model.train_step(
                        dict(inputs=self._extract(images),
                             data_samples=targets), wrapper)
            else:
                features = self._cached_batch(stage, cache_cfg, samples)
                items = len(features['inputs'])

                def step():
                    return self.model.train_step(features, wrapper)
            kind = 'features'
        else:
            items = len(self.image_batch['inputs'])

            def step():
                return self.model.train_step(self.image_batch, wrapper)
            kind = 'images'
        if not timed:
            # still train through it once so the next stage starts from a
            # state training would reach
            step()
            return None
        result = time_steps(step, self.args.warmup, self.args.iters,
                            self.device, items, sync_each_step=self.reference)
        if cache_cfg and not self.reference:
            # the one pass over the train set at the stage start
            result['extract_img_per_s'] = time_steps(
                lambda: dict(n=self._extract(images).shape[0]),
                min(self.args.warmup, 1), self.args.iters, self.device,
                len(images['inputs']), False)['items_per_s']
        result.update(stage=name, variant=self.variant, kind=kind,
                      batch=items,
                      precision='fp32' if self.reference or self.amp == 'none'
                      else self.amp)
        return result


# --------------------------------------------------------------------------
# Data loader
# --------------------------------------------------------------------------
def _make_toy_data(dataset_cfg: dict, img_size, workdir: str) -> str:
    layout = TOY_LAYOUTS.get(str(dataset_cfg.get('type')).split('.')[-1])
    if layout is None:
        raise UserInputError(
            f'train_dataloader.dataset ({dataset_cfg.get("type")}) is not on '
            f'disk and has no toy layout ({sorted(TOY_LAYOUTS)}); give the '
            'data or --skip-loader')
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..',
                    'dataset_converters', 'make_toy_vireid.py')
    spec = importlib.util.spec_from_file_location('make_toy_vireid', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = osp.join(workdir, f'toy_{layout}')
    module.make_toy_dataset(
        layout, root, num_ids=32, seed=0, imgs_per_cam=4,
        img_size=tuple(img_size), verbose=False)
    return root


def bench_loader(cfg: Config, args) -> dict:
    """img/s of ``train_dataloader`` alone (after one warm batch)."""
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    if args.batch_size:
        loader_cfg['batch_size'] = args.batch_size
    if args.num_workers is not None:
        loader_cfg['num_workers'] = args.num_workers
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    dataset_cfg = loader_cfg['dataset']
    data_root = dataset_cfg.get('data_root')
    tmp = None
    source = data_root
    if not data_root or not osp.isdir(data_root):
        tmp = tempfile.TemporaryDirectory(prefix='mmvireid_bench_')
        dataset_cfg['data_root'] = _make_toy_data(dataset_cfg,
                                                  args.toy_img_size, tmp.name)
        if 'descriptions' in dataset_cfg:
            dataset_cfg['descriptions'] = 'descriptions.json'
        source = (f'generated toy data ({args.toy_img_size[0]}x'
                  f'{args.toy_img_size[1]} JPEGs; {data_root} not found)')
    try:
        loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
        steps_per_epoch = len(loader)
        sampled_per_epoch = len(loader.sampler)
        dataset_size = len(loader.dataset)
        modality_counts = {}
        if hasattr(loader.dataset, 'get_modalities'):
            names, counts = np.unique(
                loader.dataset.get_modalities(), return_counts=True)
            modality_counts = {str(n): int(c) for n, c in zip(names, counts)}
        it = iter(loader)
        next(it)  # workers started, first batch ready
        count, batches = 0, 0
        start = time.perf_counter()
        while batches < args.loader_batches:
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                continue
            count += len(batch['inputs'])
            batches += 1
        seconds = time.perf_counter() - start
        del it, loader
    finally:
        if tmp is not None:
            tmp.cleanup()
    return dict(
        items_per_s=count / seconds,
        num_workers=loader_cfg.get('num_workers', 0),
        batch=loader_cfg['batch_size'],
        source=source,
        real_data=tmp is None,
        steps_per_epoch=steps_per_epoch,
        sampled_per_epoch=sampled_per_epoch,
        dataset_size=dataset_size,
        modality_counts=modality_counts)


# --------------------------------------------------------------------------
def _fmt(value, spec='.1f', missing='-'):
    return missing if value is None else format(value, spec)


def print_table(results: List[dict], loader: Optional[dict], meta: dict):
    print(f'\nConfig {meta["config"]} on {meta["device_name"]} '
          f'(torch {meta["torch"]}); {meta["warmup"]} warm-up + '
          f'{meta["iters"]} timed steps per row')
    header = (f'{"stage":<10} {"variant":<16} {"precision":<9} '
              f'{"batch":>6} {"items/s":>10} {"step ms":>9} '
              f'{"peak MiB":>9}')
    print(header)
    print('-' * len(header))
    by_stage: Dict[str, Dict[str, dict]] = {}
    for r in results:
        by_stage.setdefault(r['stage'], {})[r['variant']] = r
        print(f'{r["stage"]:<10} {r["variant"]:<16} {r["precision"]:<9} '
              f'{r["batch"]:>6} {r["items_per_s"]:>10.1f} '
              f'{r["step_ms"]:>9.2f} {_fmt(r["peak_mem_mib"], ".0f"):>9}')
    ratios = {}
    for stage, rows in by_stage.items():
        if 'mmvireid' in rows and 'reference-style' in rows:
            ratio = rows['mmvireid']['items_per_s'] / \
                rows['reference-style']['items_per_s']
            ratios[stage] = ratio
            print(f'ratio {stage}: {ratio:.2f}x ({rows["mmvireid"]["kind"]}'
                  '/s, mmvireid / reference-style)')
    if loader is not None:
        print(f'loader: {loader["items_per_s"]:.1f} img/s '
              f'({loader["num_workers"]} workers, batch {loader["batch"]}; '
              f'{loader["source"]})')
    return ratios


def estimate_recipe(results: List[dict], loader: dict,
                    stages: List[dict]) -> Optional[dict]:
    """Minutes per epoch of every stage and of the whole recipe.

    An image stage's epoch is ``len(train loader)`` steps, each bounded by
    the slower of the step and the loader; a prompt stage's epoch iterates
    its feature cache (built once per stage entry by one pass of the frozen
    encoder, counted once). Evaluation is not included.
    """
    rows = {(r['stage'], r['variant']): r for r in results}
    loader_s = loader['batch'] / loader['items_per_s']
    out = dict(stages={}, total_min={})
    for variant in ('mmvireid', 'reference-style'):
        total = 0.
        for stage in stages:
            row = rows.get((stage['name'], variant))
            if row is None:
                return None  # a stage was not timed
            cache = stage.get('feature_cache')
            if cache:
                mode = cache.get('mode', 'shuffled')
                per = int(cache.get('batch_size', 64))
                images = loader['dataset_size'] if mode == 'shuffled' \
                    else loader['sampled_per_epoch']
                units = images // 2 if mode == 'paired' else images
                keep = cache.get('modalities')
                if keep and mode == 'shuffled' and loader['modality_counts']:
                    units = sum(loader['modality_counts'].get(m, 0)
                                for m in keep)
                elif keep and mode == 'sampled':
                    # an identity-sampler draw is half visible, half IR
                    units = images // 2 * len(set(keep) & set(MODALITIES))
                steps = units // per if cache.get('drop_last') \
                    else -(-units // per)
                epoch_s = steps * row['step_ms'] / 1000
                once_s = images / row['extract_img_per_s'] \
                    if 'extract_img_per_s' in row else 0.
            else:
                epoch_s = loader['steps_per_epoch'] * max(
                    row['step_ms'] / 1000, loader_s)
                once_s = 0.
            stage_s = stage['epochs'] * epoch_s + once_s
            total += stage_s
            out['stages'].setdefault(stage['name'], {})[variant] = dict(
                epoch_min=epoch_s / 60, stage_min=stage_s / 60)
        out['total_min'][variant] = total / 60
    return out


def print_estimate(estimate: Optional[dict], loader: Optional[dict]) -> None:
    if loader is None:
        return
    if not loader['real_data']:
        print('time per epoch / full recipe: not estimated (the dataset is '
              'not on disk; the generated toy epoch is not the recipe\'s)')
        return
    if estimate is None:
        print('full recipe: not estimated (time every stage with both '
              'variants)')
        return
    for stage, variants in estimate['stages'].items():
        text = ', '.join(f'{v} {d["epoch_min"]:.2f} min/epoch'
                         for v, d in variants.items())
        print(f'epoch {stage}: {text}')
    text = ', '.join(f'{v} {m:.1f} min'
                     for v, m in estimate['total_min'].items())
    print(f'full recipe (training only, no evaluation): {text}')


def print_markdown(results: List[dict], ratios: Dict[str, float],
                   loader: Optional[dict], meta: dict) -> None:
    """The rows in the layout of the tables of docs/en/benchmarks.md."""
    print('\n| config | stage | precision | batch | mmvireid items/s | '
          'reference-style items/s | ratio | peak MiB (ours / ref) |')
    print('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |')
    rows = {(r['stage'], r['variant']): r for r in results}
    for stage in dict.fromkeys(r['stage'] for r in results):
        mine = rows.get((stage, 'mmvireid'))
        ref = rows.get((stage, 'reference-style'))
        if mine is None:
            continue
        ratio = ratios.get(stage)
        print(f'| {osp.basename(meta["config"])} | {stage} '
              f'({mine["kind"]}) | {mine["precision"]} | {mine["batch"]} | '
              f'{mine["items_per_s"]:.1f} | '
              f'{_fmt(ref and ref["items_per_s"])} | '
              f'{_fmt(ratio, ".2f")}x | '
              f'{_fmt(mine["peak_mem_mib"], ".0f")} / '
              f'{_fmt(ref and ref["peak_mem_mib"], ".0f")} |')
    if loader is not None:
        print(f'\nloader: {loader["items_per_s"]:.1f} img/s, '
              f'{loader["num_workers"]} workers, batch {loader["batch"]}, '
              f'{loader["source"]}')


def main(argv=None) -> None:
    args = parse_args(argv)
    register_all_modules()
    # keep model-init and param-group logs out of the table
    # (a new, current logger per call: main() may run twice in a process)
    MMLogger.get_instance(
        f'benchmark_train_{time.time_ns()}', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    stages = cfg.get('train_cfg', {}).get('stages')
    if not stages:
        raise UserInputError(
            f'{args.config}: train_cfg.stages is empty; benchmark_train.py '
            'times the stages of a MultiStageTrainLoop config')
    names = [s['name'] for s in stages]
    unknown = set(args.stages or ()) - set(names)
    if unknown:
        raise UserInputError(f'--stages {sorted(unknown)}: {args.config} has '
                             f'the stages {names}')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserInputError('--device cuda: no CUDA device is available')
    if args.amp != 'none' and device.type != 'cuda':
        raise UserInputError(
            f'--amp {args.amp} needs a CUDA device (mmengine\'s '
            'AmpOptimWrapper); use --amp none on CPU')
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True

    variants = ['mmvireid'] + ([] if args.skip_baseline else
                               ['reference-style'])
    if args.loader_only:
        variants = []
    # stages after the last timed one need not be entered
    timed = [i for i, s in enumerate(stages)
             if not args.stages or s['name'] in args.stages]
    results = []
    for variant in variants:
        vcfg = variant_cfg(cfg, variant == 'reference-style', args.amp)
        bench = StageBench(vcfg, variant, device, args.amp, args)
        for stage in stages[:timed[-1] + 1]:
            row = bench.run_stage(stage)
            if row is not None:
                results.append(row)
        del bench
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    loader = None if args.skip_loader else bench_loader(cfg, args)
    meta = dict(
        config=args.config,
        device=str(device),
        device_name=torch.cuda.get_device_name(device)
        if device.type == 'cuda' else platform.processor() or 'CPU',
        cpu_threads=torch.get_num_threads(),
        torch=torch.__version__,
        amp=args.amp,
        warmup=args.warmup,
        iters=args.iters,
        command=' '.join([osp.basename(sys.executable)] + sys.argv))
    ratios = print_table(results, loader, meta)
    if args.markdown:
        print_markdown(results, ratios, loader, meta)
    estimate = None
    if loader is not None and loader['real_data']:
        estimate = estimate_recipe(results, loader, stages)
    print_estimate(estimate, loader)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        payload = json.dumps(
            dict(meta=meta, steps=results, ratios=ratios, loader=loader,
                 estimate=estimate),
            indent=2).encode()
        atomic_write(args.out, payload)
        print(f'results written to {args.out}')


if __name__ == '__main__':
    run_or_explain(main)
