# Copyright (c) mmvireid contributors. All rights reserved.
"""Rehearse the real data path at SYSU-MM01 and LLCM scale on a CPU.

Synthetic data with the real datasets' identity, image and gallery-folder
counts (``make_toy_vireid.py --scale full``: small images, real counts) goes
through the real dataset classes, pipelines, decoded-once image cache,
feature caches, stage plans and metric, with the tiny toy models. Measured,
phase by phase, with the peak resident memory of the phase:

1. **data**: generating the synthetic datasets (skipped when present);
2. **index**: building every split's dataset object (listing the folders,
   reading the index files, the split checks, the gallery-candidate lists);
3. **image cache**: building the decoded-once cache of every split (time
   and size on disk), then opening it again (what every later run does);
4. **train**: ``tools/train.py --rehearse``'s plan for each config: every
   stage for ``--iters`` iterations, with its stage switch (the feature
   cache of the prompt stages is extracted over the full-size train set by
   the real :class:`StageSwitchHook`), a checkpoint per stage and a one-draw
   evaluation at the end of every validating stage;
5. **evaluation**: one feature pass over each full-size test split and the
   real :class:`VIReIDMetric` with all 10 trials: SYSU all-search and indoor
   search, single-shot and multi-shot; LLCM IR->VIS and VIS->IR (both
   readings of VIS->IR).

Peak RSS is the process's high-water mark (``VmHWM``, reset at every phase
start where the kernel allows it); the generator, a separate program,
reports its own. Results go to ``--out``
(JSON) and a markdown table (printed; ``--markdown-out`` writes it)::

    OMP_NUM_THREADS=1 python tools/analysis_tools/scale_rehearsal.py \\
        --data-dir data --work-dir work_dirs/scale_rehearsal \\
        --out work_dirs/scale_rehearsal/rehearsal.json

    # seconds, toy-sized data (what the tests run)
    python tools/analysis_tools/scale_rehearsal.py --small \\
        --data-dir /tmp/rehearsal_data --work-dir /tmp/rehearsal
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GENERATOR = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                     'make_toy_vireid.py')

#: layout -> (dataset type, training rehearsal configs, evaluation config)
LAYOUTS = dict(
    sysu=dict(
        dataset='SYSUMM01Dataset',
        configs=('configs/clip_vireid_toy.py', 'configs/csdn_toy.py',
                 'configs/eees_toy.py', 'configs/clip4vireid_toy.py'),
        eval_config='configs/clip_vireid_toy.py'),
    llcm=dict(
        dataset='LLCMDataset',
        configs=('configs/clip_vireid_toy_llcm.py', ),
        eval_config='configs/clip_vireid_toy_llcm.py'))
#: The splits indexed and cached per layout: (name, dataset kwargs).
SPLITS = dict(
    sysu=(('train', dict(split='train')),
          ('test (all)', dict(split='test', search_mode='all')),
          ('test (indoor)', dict(split='test', search_mode='indoor'))),
    llcm=(('train', dict(split='train')), ('test', dict(split='test'))))
#: The evaluations per layout: (name, dataset kwargs, metrics).
EVALS = dict(
    sysu=(('all', dict(search_mode='all'), (
        ('single', dict(protocol='sysu', gallery_mode='single')),
        ('multi', dict(protocol='sysu', gallery_mode='multi')),
    )), ('indoor', dict(search_mode='indoor'), (
        ('single', dict(protocol='sysu', gallery_mode='single')),
        ('multi', dict(protocol='sysu', gallery_mode='multi')),
    ))),
    llcm=(('both', dict(), (
        ('symmetric', dict(protocol='llcm', llcm_vis2ir_mode='symmetric')),
        ('deen', dict(protocol='llcm', llcm_vis2ir_mode='deen')),
    )), ))
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------
# Memory and time
# ---------------------------------------------------------------------------
def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs``);
    False where the kernel does not allow it (peaks then accumulate)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """This process's peak RSS since the last reset, in MiB."""
    kib = _status_kib('VmHWM')
    if kib is None:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        scale = 1 if sys.platform == 'darwin' else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB
    return kib / 1024.0


def children_peak_rss_mib() -> float:
    """The largest peak RSS of any finished child process, in MiB."""
    scale = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / MIB


class Recorder:
    """Collects one row per measured phase."""

    def __init__(self) -> None:
        self.rows: List[dict] = []
        self.resettable = reset_peak_rss()

    @contextmanager
    def phase(self, phase: str, what: str, **info):
        """Time the block and record its peak RSS; the block may fill the
        yielded dict with more fields (``items``, ``seconds`` override, ...).
        """
        row = dict(phase=phase, what=what, **info)
        self.resettable = reset_peak_rss() and self.resettable
        start = time.perf_counter()
        try:
            yield row
        finally:
            row.setdefault('seconds', time.perf_counter() - start)
            row['peak_rss_mib'] = peak_rss_mib()
            self.rows.append(row)
            print(
                f'[{phase}] {what}: {row["seconds"]:.2f} s, peak RSS '
                f'{row["peak_rss_mib"]:.0f} MiB',
                flush=True)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
#: Generator arguments of the small data (``--small``): SYSU's multi-shot
#: gallery needs 10 images per folder.
SMALL_DATA = dict(num_ids=24, imgs_per_cam=10, img_size=[64, 32])


def generated_meta(root: str) -> Optional[dict]:
    """The generation arguments of the synthetic dataset at ``root``."""
    path = osp.join(root, 'toy_meta.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def make_data(layout: str, root: str, small: bool,
              workers: Optional[int]) -> Optional[dict]:
    """Generate the synthetic ``layout`` dataset at ``root`` (full scale,
    or a small toy one for ``small``) unless it is there; the generator's
    peak RSS (see :func:`run_measured`), or None if nothing was made."""
    meta = generated_meta(root) or {}
    if small:
        present = meta.get('scale', 'toy') == 'toy' and all(
            meta.get(k) == v for k, v in SMALL_DATA.items())
    else:
        present = meta.get('scale') == 'full' and meta.get('seed') == 0
    if present:
        return None
    args = ['--layout', layout, '--out', root, '--overwrite']
    if small:
        args += ['--num-ids', str(SMALL_DATA['num_ids']), '--imgs-per-cam',
                 str(SMALL_DATA['imgs_per_cam']), '--img-size'] + \
            [str(x) for x in SMALL_DATA['img_size']]
    else:
        args += ['--scale', 'full']
    if workers:
        args += ['--workers', str(workers)]
    return run_measured(GENERATOR, args)


#: Runs a script in a fresh interpreter and prints, as its last line, the
#: peak RSS of that interpreter (VmHWM: a new program's own, not the pages
#: of the process it was forked from) and of its largest child.
_MEASURED = """\
import json, resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
hwm = [int(line.split()[1]) for line in open('/proc/self/status')
       if line.startswith('VmHWM:')]
print(json.dumps(dict(
    peak_rss_mib=hwm[0] / 1024,
    children_peak_rss_mib=resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""


def run_measured(script: str, args: Sequence[str]) -> dict:
    """Run ``script args`` in a new interpreter; its peak RSS and that of
    its largest child (a forked child counts the pages it shares with the
    script at the fork), in MiB."""
    proc = subprocess.run(
        [sys.executable, '-c', _MEASURED, script] + list(args),
        check=True,
        stdout=subprocess.PIPE,
        text=True)
    lines = proc.stdout.strip().splitlines()
    print('\n'.join(lines[:-1]), flush=True)
    return json.loads(lines[-1])


def dir_size_mib(path: str) -> float:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            total += osp.getsize(osp.join(dirpath, name))
    return total / MIB


def count_files(path: str) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------
def load_config(config: str,
                data_root: str,
                work_dir: str,
                image_cache: Optional[dict],
                num_classes: Optional[int],
                max_rank: Optional[int] = None):
    """``config`` on ``data_root`` (every loader), with ``image_cache`` on
    every dataset, ``model.num_classes`` and the metrics' ``max_rank``
    set (the small data's galleries are shorter than the default 20)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    root = data_root.rstrip('/') + '/'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.dataset.data_root = root
        loader.dataset.image_cache = copy.deepcopy(image_cache)
    if num_classes is not None:
        cfg.model.num_classes = num_classes
    if max_rank is not None:
        for key in ('val_evaluator', 'test_evaluator'):
            if cfg.get(key) is not None:
                cfg[key].max_rank = max_rank
    cfg.work_dir = work_dir
    return cfg


def config_layout(config: str) -> Optional[str]:
    """The layout (key of :data:`LAYOUTS`) of ``config``'s train dataset."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    dataset_type = str(cfg.train_dataloader.dataset.type).split('.')[-1]
    for layout, info in LAYOUTS.items():
        if info['dataset'] == dataset_type:
            return layout
    return None


def split_dataset_cfg(cfg, kwargs: dict) -> dict:
    """The config's test dataset (pipeline, root, cache) with ``kwargs``."""
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset.update(kwargs)
    return dataset.to_dict() if hasattr(dataset, 'to_dict') else dataset


# ---------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------
def index_and_cache(rec: Recorder, layout: str, cfg, cache_dir: str,
                    cache_workers: int) -> Dict[str, int]:
    """Index every split without and with the image cache (built, then
    reopened); returns ``{split: items}`` and the training class count."""
    from mmvireid.registry import DATASETS
    counts = {}
    splits = SPLITS[layout]
    for name, kwargs in splits:
        with rec.phase('index', f'{layout} {name}') as row:
            dataset = DATASETS.build(
                dict(split_dataset_cfg(cfg, kwargs), image_cache=None))
            row['items'] = len(dataset)
        counts[name] = len(dataset)
        if name == 'train':
            counts['num_classes'] = dataset.metainfo['num_classes']
        del dataset
    image_cache = dict(dir=cache_dir, num_workers=cache_workers)
    for name, kwargs in splits:
        before = dir_size_mib(cache_dir) if osp.isdir(cache_dir) else 0.
        for attempt in ('build', 'open'):
            with rec.phase(
                    f'image cache {attempt}',
                    f'{layout} {name}',
                    workers=cache_workers) as row:
                dataset = DATASETS.build(
                    dict(
                        split_dataset_cfg(cfg, kwargs),
                        image_cache=image_cache))
                row['items'] = len(dataset)
                if attempt == 'build':
                    row['size_mib'] = dir_size_mib(cache_dir) - before
            del dataset
    return counts


#: The data pipelines of the real recipes (288x144 inputs).
REAL_PIPELINES = 'configs/_base_/datasets/vireid_pipelines_288x144.py'


def real_size_caches(rec: Recorder, layout: str, cfg, cache_dir: str,
                     workers: int, keep: bool) -> None:
    """Build the image caches of the real recipes' 288x144 pipelines for
    the train and the (all-search) test split: time, size on disk and the
    peak RSS of writing them (the written pages of the memory-mapped file
    count as resident until the kernel writes them back). The files are
    removed afterwards unless ``keep``."""
    from mmengine.config import Config

    from mmvireid.registry import DATASETS
    pipeline = Config.fromfile(osp.join(REPO_ROOT,
                                        REAL_PIPELINES)).test_pipeline
    real_dir = cache_dir + '_288x144'
    for name, kwargs in SPLITS[layout][:2]:
        with rec.phase(
                'image cache build', f'{layout} {name}, 288x144',
                workers=workers) as row:
            dataset = DATASETS.build(
                dict(
                    split_dataset_cfg(cfg, kwargs),
                    pipeline=copy.deepcopy(pipeline),
                    image_cache=dict(dir=real_dir, num_workers=workers)))
            row['items'] = len(dataset)
            row['size_mib'] = dir_size_mib(real_dir)
        del dataset
        if not keep:
            shutil.rmtree(real_dir)


class StageTimer:
    """Hooks of a training run: time of every stage switch (the
    ``before_train_epoch`` hooks, where the feature caches are built), of
    its iterations and of the evaluations. Registered at the highest and
    the lowest priority so that it brackets the other hooks."""

    def __init__(self) -> None:
        from mmengine.hooks import Hook

        timer = self

        class First(Hook):

            def before_train_epoch(self, runner) -> None:
                timer.enter(runner)

            def before_val_epoch(self, runner) -> None:
                timer.val_start = time.perf_counter()

        class Last(Hook):

            def before_train_epoch(self, runner) -> None:
                timer.entered(runner)

            def after_train_iter(self,
                                 runner,
                                 batch_idx,
                                 data_batch=None,
                                 outputs=None) -> None:
                timer.current['iters'] += 1

            def after_train_epoch(self, runner) -> None:
                timer.current['iter_s'] = \
                    time.perf_counter() - timer.current.pop('_start')

            def after_val_epoch(self, runner, metrics=None) -> None:
                timer.current['val_s'] = time.perf_counter() - timer.val_start

        self.first, self.last = First(), Last()
        self.stages: List[dict] = []
        self.current: dict = {}
        self.val_start = 0.

    def enter(self, runner) -> None:
        stage = runner.train_loop.stage_at(runner.epoch)
        self.current = dict(
            stage=stage.name, _switch=time.perf_counter(), iters=0)
        self.stages.append(self.current)

    def entered(self, runner) -> None:
        now = time.perf_counter()
        self.current['switch_s'] = now - self.current.pop('_switch')
        self.current['_start'] = now
        loader = runner.train_loop.dataloader
        self.current['loader'] = type(loader.dataset).__name__
        self.current['loader_items'] = len(loader.dataset)

    def register(self, runner) -> None:
        runner.register_hook(self.first, 'HIGHEST')
        runner.register_hook(self.last, 'LOWEST')


def rehearse_training(rec: Recorder, layout: str, config: str, data_root: str,
                      cache_dir: str, num_classes: int, iters: int,
                      work_dir: str, max_rank: Optional[int]) -> Optional[str]:
    """Every stage of ``config`` for ``iters`` iterations at full scale
    (``tools/train.py --rehearse``'s plan, one run); returns the last
    checkpoint."""
    from mmengine.runner import Runner

    from mmvireid.utils.tool_utils import rehearsal_config
    name = osp.splitext(osp.basename(config))[0]
    run_dir = osp.join(work_dir, f'{layout}_{name}')
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(config, data_root, run_dir,
                      dict(dir=cache_dir, num_workers=0), num_classes,
                      max_rank)
    cfg = rehearsal_config(cfg, iters, run_dir)
    cfg.default_hooks.logger.interval = max(1, iters)
    timer = StageTimer()
    with rec.phase('train', f'{layout} {name}', iters_per_stage=iters) as row:
        runner = Runner.from_cfg(cfg)
        timer.register(runner)
        build_start = time.perf_counter()
        runner.train()
        row['stages'] = [{
            k: v
            for k, v in s.items() if not k.startswith('_')
        } for s in timer.stages]
        row['build_and_train_s'] = time.perf_counter() - build_start
        del runner
    last = sorted((f for f in os.listdir(run_dir) if f.startswith('epoch_')),
                  key=lambda f: int(f[6:-4]))
    return osp.join(run_dir, last[-1]) if last else None


def build_test_model(cfg, checkpoint: Optional[str], device: str):
    """The config's model with its pretrained weights, then ``checkpoint``
    (if any), in eval mode on ``device``."""
    import torch
    from mmengine.runner import load_checkpoint

    from mmvireid.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint is not None:
        load_checkpoint(
            model,
            checkpoint,
            map_location='cpu',
            strict=True,
            logger='silent')
    model.to(torch.device(device))
    model.eval()
    return model


def evaluate(model,
             cfg,
             dataset_kwargs: dict,
             metrics: Sequence[tuple],
             device: str,
             amp: Optional[str] = None) -> dict:
    """One feature pass over the test split and every metric on it.

    Args:
        model: The model (eval mode, on ``device``).
        cfg (Config): Gives the test loader (pipeline, workers, cache).
        dataset_kwargs (dict): Overrides of the test dataset
            (``search_mode``, ...).
        metrics (Sequence[tuple]): ``(name, VIReIDMetric kwargs)``; all run
            ``num_trials=10`` unless given.
        device (str): Where the model runs.
        amp (str, optional): ``'bf16'`` / ``'fp16'``: extract under autocast
            (CUDA), as ``--amp`` does. Defaults to None (fp32).

    Returns:
        dict: ``items``, ``build_s`` (dataset and loader), ``extract_s``,
        ``img_per_s``, and per metric ``seconds`` and the mean ``Rank-1`` /
        ``mAP`` of its main direction (and per direction).
    """
    import torch
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from mmvireid.registry import METRICS
    start = time.perf_counter()
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.dataset.update(dataset_kwargs)
    loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg.to_dict(), seed=0)
    built = time.perf_counter()
    built_metrics = []
    for name, kwargs in metrics:
        kwargs = dict(dict(type='VIReIDMetric', num_trials=10), **kwargs)
        built_metrics.append((name, METRICS.build(kwargs)))
    evaluator = Evaluator([m for _, m in built_metrics])
    context = torch.autocast(
        'cuda', dtype=dict(bf16=torch.bfloat16, fp16=torch.float16)[amp]) \
        if amp else torch.autocast('cpu', enabled=False)
    extract_start = time.perf_counter()
    with torch.no_grad(), context:
        for batch in loader:
            outputs = model.test_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    extract_s = time.perf_counter() - extract_start
    size = len(loader.dataset)
    out = dict(
        items=size,
        build_s=built - start,
        extract_s=extract_s,
        img_per_s=size / extract_s,
        metrics={})
    for name, metric in built_metrics:
        metric_start = time.perf_counter()
        values = metric.evaluate(size)
        seconds = time.perf_counter() - metric_start
        results = metric.last_results
        summary = dict(
            seconds=seconds,
            num_trials=results['num_trials'],
            main_direction=results['main_direction'],
            directions={})
        for direction, res in results['directions'].items():
            first = res['trials'][0]
            summary['directions'][direction] = dict(
                num_query=first['num_query'],
                num_gallery=first['num_gallery'],
                rank1=res['mean']['Rank-1'],
                mAP=res['mean']['mAP'])
        summary['values'] = {k: float(v) for k, v in values.items()}
        out['metrics'][name] = summary
    return out


def rehearse_evaluation(rec: Recorder, layout: str, data_root: str,
                        cache_dir: str, num_classes: int,
                        checkpoint: Optional[str], work_dir: str,
                        max_rank: Optional[int]) -> None:
    """All 10 trials of every protocol reading of ``layout``."""
    config = LAYOUTS[layout]['eval_config']
    cfg = load_config(config, data_root, work_dir,
                      dict(dir=cache_dir, num_workers=0), num_classes)
    extra = {} if max_rank is None else dict(max_rank=max_rank)
    model = build_test_model(cfg, checkpoint, 'cpu')
    for name, kwargs, metrics in EVALS[layout]:
        with rec.phase(
                'evaluate',
                f'{layout} {name}',
                config=osp.basename(config),
                checkpoint=checkpoint) as row:
            row.update(
                evaluate(model, cfg, kwargs,
                         [(n, dict(m, **extra)) for n, m in metrics], 'cpu'))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def _fmt(value, spec='.1f', missing='-'):
    return missing if value is None else format(value, spec)


def _describe(row: dict) -> str:
    """The measured details of a row, in words."""
    phase = row['phase']
    if phase == 'data':
        if not row.get('made'):
            return 'present, not regenerated'
        gen = row['generator']
        return (f'{row["images"]} files, {row["size_mib"]:.0f} MiB; the '
                f'generator {gen["peak_rss_mib"]:.0f} MiB, its largest '
                f'worker {gen["children_peak_rss_mib"]:.0f} MiB')
    if phase == 'index':
        return f'{row["items"]} items'
    if phase.startswith('image cache'):
        text = f'{row["items"]} images'
        if 'size_mib' in row:
            text += f', {row["size_mib"]:.0f} MiB on disk'
        return text
    if phase == 'train':
        parts = []
        for s in row['stages']:
            parts.append(
                f'{s["stage"]}: switch {s["switch_s"]:.1f} s '
                f'({s["loader"]} of {s["loader_items"]}), '
                f'{s["iters"]} it {s.get("iter_s", 0):.1f} s' +
                (f', eval {s["val_s"]:.1f} s' if 'val_s' in s else ''))
        return '; '.join(parts)
    if phase == 'evaluate':
        parts = [
            f'{row["items"]} images, extraction {row["extract_s"]:.1f} '
            f's ({row["img_per_s"]:.0f} img/s)'
        ]
        for name, m in row['metrics'].items():
            dirs = ', '.join(f'{d} {v["num_query"]}x{v["num_gallery"]} R1 '
                             f'{v["rank1"]:.1f}'
                             for d, v in m['directions'].items())
            parts.append(f'{name} x{m["num_trials"]}: {m["seconds"]:.2f} s '
                         f'({dirs})')
        return '; '.join(parts)
    return ''


def markdown(rows: Sequence[dict]) -> str:
    lines = [
        '| phase | data | seconds | peak RSS MiB | what was measured |',
        '| --- | --- | ---: | ---: | --- |'
    ]
    for row in rows:
        lines.append(f'| {row["phase"]} | {row["what"]} | '
                     f'{row["seconds"]:.2f} | {row["peak_rss_mib"]:.0f} | '
                     f'{_describe(row)} |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rehearse datasets, image and feature caches, every '
        'training stage and the 10-trial evaluations at SYSU-MM01 / LLCM '
        'scale with the tiny toy models on a CPU.')
    parser.add_argument(
        '--layouts',
        nargs='+',
        default=['sysu', 'llcm'],
        choices=sorted(LAYOUTS))
    parser.add_argument(
        '--data-dir',
        default=osp.join(REPO_ROOT, 'data'),
        help='where the synthetic data is (or is generated): '
        'full_<layout>/ (small_<layout>/ with --small)')
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'scale_rehearsal'))
    parser.add_argument(
        '--iters', type=int, default=5, help='training iterations per stage')
    parser.add_argument(
        '--configs',
        nargs='+',
        help='training configs to rehearse (default: the toy recipes of '
        'each layout)')
    parser.add_argument('--skip-train', action='store_true')
    parser.add_argument('--skip-eval', action='store_true')
    parser.add_argument(
        '--gen-workers', type=int, help='processes generating the data')
    parser.add_argument(
        '--cache-workers',
        type=int,
        default=0,
        help='processes building the image caches')
    parser.add_argument(
        '--skip-real-size-cache',
        action='store_true',
        help='do not build the 288x144 image caches of the real recipes '
        '(4.2 GB for SYSU-MM01 train, removed after measuring)')
    parser.add_argument(
        '--keep-caches',
        action='store_true',
        help='keep the 288x144 image caches')
    parser.add_argument(
        '--small',
        action='store_true',
        help='toy-sized data (24 identities, CMC to rank 5): the whole path '
        'in seconds')
    parser.add_argument(
        '--out',
        help='JSON results (default: '
        '<work-dir>/scale_rehearsal.json)')
    parser.add_argument('--markdown-out', help='also write the table here')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # absolute: a relative image_cache.dir is taken under the data root
    args.work_dir = osp.abspath(args.work_dir)
    args.data_dir = osp.abspath(args.data_dir)
    import torch

    from mmvireid.utils import register_all_modules
    register_all_modules()
    os.makedirs(args.work_dir, exist_ok=True)
    rec = Recorder()
    start = time.perf_counter()
    prefix = 'small' if args.small else 'full'
    # the small data's galleries hold fewer than 20 items for some queries
    max_rank = 5 if args.small else None
    summary = dict(
        meta=dict(
            command=' '.join([osp.basename(sys.executable)] + sys.argv),
            python=platform.python_version(),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            cpu_count=os.cpu_count(),
            scale=prefix,
            iters=args.iters,
            peak_reset=rec.resettable),
        rows=rec.rows)
    for layout in args.layouts:
        root = osp.join(args.data_dir, f'{prefix}_{layout}')
        with rec.phase('data', f'{layout} generation') as row:
            generator = make_data(layout, root, args.small, args.gen_workers)
            row['made'] = generator is not None
            if generator is not None:
                row['generator'] = generator
            row['images'] = count_files(root)
            row['size_mib'] = dir_size_mib(root)
        cache_dir = osp.join(args.work_dir, f'cache_{layout}')
        shutil.rmtree(cache_dir, ignore_errors=True)
        layout_cfg = LAYOUTS[layout]
        cfg = load_config(layout_cfg['eval_config'], root, args.work_dir, None,
                          None)
        counts = index_and_cache(rec, layout, cfg, cache_dir,
                                 args.cache_workers)
        num_classes = counts['num_classes']
        if not args.skip_real_size_cache:
            real_size_caches(rec, layout, cfg, cache_dir, args.cache_workers,
                             args.keep_caches)
        checkpoint = None
        if not args.skip_train:
            configs = layout_cfg['configs'] if args.configs is None else [
                c for c in args.configs if config_layout(c) == layout
            ]
            for config in configs:
                ckpt = rehearse_training(rec, layout, config, root, cache_dir,
                                         num_classes, args.iters,
                                         args.work_dir, max_rank)
                if config == layout_cfg['eval_config']:
                    checkpoint = ckpt
        if not args.skip_eval:
            rehearse_evaluation(rec, layout, root, cache_dir, num_classes,
                                checkpoint,
                                osp.join(args.work_dir,
                                         f'eval_{layout}'), max_rank)
    summary['meta']['total_s'] = time.perf_counter() - start
    summary['meta']['peak_rss_mib'] = max(
        [r['peak_rss_mib'] for r in rec.rows] + [peak_rss_mib()])
    # (a forked child's peak counts the pages it shared with this process)
    summary['meta']['children_peak_rss_mib'] = children_peak_rss_mib()
    table = markdown(rec.rows)
    print('\n' + table)
    print(f'\ntotal {summary["meta"]["total_s"]:.0f} s; peak RSS '
          f'{summary["meta"]["peak_rss_mib"]:.0f} MiB')
    out = args.out or osp.join(args.work_dir, 'scale_rehearsal.json')
    with open(out, 'w') as f:
        json.dump(summary, f, indent=1)
    if args.markdown_out:
        with open(args.markdown_out, 'w') as f:
            f.write(table + '\n')
    print(f'results written to {out}')
    return summary


if __name__ == '__main__':
    main()
