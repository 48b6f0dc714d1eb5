# Copyright (c) mmvireid contributors. All rights reserved.
"""Every GPU measurement of docs/en/benchmarks.md in one call.

Run through ``tools/analysis_tools/gpu_check.sh`` (see there). Each part runs
in its own process with its own time limit, so a slow or failing part costs
at most its limit: its error goes into the JSON and the next part starts.
Parts, in the order they run (most important first, as the budget may run
out):

* ``setup``: the data the other parts need, generated here (the GPU host
  has a copy of the repository only): synthetic SYSU-MM01 with the real
  counts (``make_toy_vireid.py --scale full``), the 64-identity toy world
  of the demo and the toy CLIP weights (``tools/pretrain_toy_clip.py``,
  unless ``data/toy_clip/tiny_rn.pth`` is there).
* ``train_csdn_bf16``, ``train_eees_bf16``: ``benchmark_train.py`` on
  ``configs/csdn_sysu.py`` / ``configs/eees_sysu.py`` with bf16 autocast:
  every stage at the real shapes (random weights), against the
  reference-style fp32 step, with peak GPU memory, the feature-cache
  extraction rate of the prompt stages, the train loader (the config's 8
  workers and image cache) on the synthetic full-size SYSU, and from these
  the minutes per epoch and per recipe.
* ``eval_sysu``: one feature pass of the ``csdn_sysu.py`` model (random
  weights, bf16) over the full-size synthetic SYSU test split and the real
  metric, 10 trials, single- and multi-shot.
* ``toy_amp``: ``configs/csdn_toy.py`` trained with ``--amp bf16`` and in
  fp32, seeds 0 and 1, on the toy world: the last evaluation's Rank-1.
* ``llava``: description throughput (images/s) of
  ``tools/generate_descriptions.py``'s vlm captioner with the
  LLaVA-1.5-7B architecture, random weights, bf16 (skipped when
  transformers is missing).
* ``train_csdn_fp32``, ``train_eees_fp32``: the mmvireid rows without AMP
  (the reference-style rows are fp32 already).

``--small`` runs the same parts tiny (toy data, toy configs, one or two
steps, a tiny LLaVA), ``--device cpu`` on the CPU, where AMP does not exist:
the bf16 parts then run in fp32 and say so. Output: ``OUT/gpu_check.json``
(``meta`` and, per part, ``status`` (``ok``, ``error``, ``timeout``,
``skipped``), ``seconds``, ``result`` and ``error``), ``OUT/gpu_check.md``
(the markdown rows of docs/en/benchmarks.md) and ``OUT/parts/<part>.log``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional

HERE = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(HERE))
# the tools beside this file and generate_descriptions.py (not packages)
sys.path.insert(0, HERE)
sys.path.insert(1, osp.join(REPO_ROOT, 'tools'))

#: part -> (limit in seconds on a GPU, limit with --small). The GPU limits
#: sum to more than the default budget on purpose: a part that finishes
#: early leaves its time to the later ones, and the last ones (the least
#: important) are cut if the budget runs out.
PART_LIMITS = dict(
    setup=(150, 90),
    train_csdn_bf16=(110, 60),
    train_eees_bf16=(90, 60),
    eval_sysu=(75, 40),
    toy_amp=(170, 90),
    llava=(110, 60),
    train_csdn_fp32=(60, 60),
    train_eees_fp32=(60, 60))
PARTS = tuple(PART_LIMITS)
BENCH_PARTS = dict(
    train_csdn_bf16=('csdn', 'bf16'),
    train_eees_bf16=('eees', 'bf16'),
    train_csdn_fp32=('csdn', 'fp32'),
    train_eees_fp32=('eees', 'fp32'))
#: SYSU-MM01's training images, for the description-time estimate.
SYSU_TRAIN_IMAGES = 22258 + 11909


class Context:
    """Paths and settings every part shares (from the command line)."""

    def __init__(self, args) -> None:
        self.device = args.device
        self.small = args.small
        self.cuda = args.device.startswith('cuda')
        self.out = osp.abspath(args.out)
        self.data_dir = osp.abspath(args.data_dir)
        self.parts_dir = osp.join(self.out, 'parts')
        self.sysu_root = osp.join(self.data_dir,
                                  'small_sysu' if self.small else 'full_sysu')
        self.toy_root = self.sysu_root if self.small else osp.join(
            self.data_dir, 'toy_sysu')
        repo_clip = osp.join(REPO_ROOT, 'data', 'toy_clip', 'tiny_rn.pth')
        self.toy_clip_dir = osp.dirname(repo_clip) if osp.isfile(
            repo_clip) and not self.small else osp.join(
                self.data_dir, 'toy_clip')
        self.amp = 'bf16' if self.cuda else 'none'

    def env(self) -> dict:
        env = dict(os.environ, MMVIREID_TOY_CLIP_DIR=self.toy_clip_dir)
        env['PYTHONPATH'] = os.pathsep.join(
            [REPO_ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
        if not self.cuda:
            env.setdefault('OMP_NUM_THREADS', '1')
        return env


def run(cmd: List[str], ctx: Context, **kwargs) -> subprocess.CompletedProcess:
    """Run a tool of this repository; its output goes to this part's log."""
    print('$ ' + ' '.join(cmd), flush=True)
    return subprocess.run(
        cmd, env=ctx.env(), cwd=REPO_ROOT, check=True, **kwargs)


# ---------------------------------------------------------------------------
# Parts (each runs in its own process: python gpu_check.py --part NAME)
# ---------------------------------------------------------------------------
def part_setup(ctx: Context) -> dict:
    """Generate the data and the toy CLIP weights the other parts use."""
    from scale_rehearsal import SMALL_DATA, generated_meta
    gen = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                   'make_toy_vireid.py')
    out = {}
    weights = osp.join(ctx.toy_clip_dir, 'tiny_rn.pth')
    pretrain = None
    start = time.perf_counter()
    if not osp.isfile(weights) and ctx.small:
        # a few steps, as the tests' fixture: the path, not the weights
        from pretrain_toy_clip import pretrain as pretrain_clip
        pretrain_clip(
            'tiny_rn',
            weights,
            num_ids=32,
            steps=3,
            batch_size=16,
            eval_ids=8,
            workers=1,
            log_interval=1000,
            threads=1)
    elif not osp.isfile(weights):
        # the demo's weights (about a minute of CPU): beside the data
        # generation
        cmd = [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'pretrain_toy_clip.py'), '--arch',
            'tiny_rn', '--out', weights
        ]
        print('$ ' + ' '.join(cmd), flush=True)
        pretrain = subprocess.Popen(cmd, env=ctx.env(), cwd=REPO_ROOT)
    workers = str(min(16, os.cpu_count() or 1))
    if ctx.small:
        small = SMALL_DATA
        wanted = [(ctx.sysu_root, [
            '--num-ids',
            str(small['num_ids']), '--imgs-per-cam',
            str(small['imgs_per_cam']), '--img-size'
        ] + [str(x) for x in small['img_size']], small)]
    else:
        wanted = [(ctx.sysu_root, ['--scale', 'full'], dict(scale='full')),
                  (ctx.toy_root, ['--num-ids', '64'], dict(num_ids=64))]
    for root, args, expected in wanted:
        meta = generated_meta(root)
        start_root = time.perf_counter()
        if meta is None or any(meta.get(k) != v for k, v in expected.items()):
            run([
                sys.executable, gen, '--layout', 'sysu', '--out', root,
                '--overwrite', '--workers', workers
            ] + args, ctx)
        out[f'{osp.basename(root)}_s'] = time.perf_counter() - start_root
    if pretrain is not None:
        if pretrain.wait() != 0:
            raise RuntimeError('tools/pretrain_toy_clip.py failed')
    out['toy_clip'] = weights
    out['seconds'] = time.perf_counter() - start
    return out


def _bench_config(ctx: Context, method: str) -> str:
    return f'configs/{method}_{"toy" if ctx.small else "sysu"}.py'


def part_bench(ctx: Context, method: str, precision: str) -> dict:
    """``benchmark_train.py`` of one method at one precision."""
    config = _bench_config(ctx, method)
    json_out = osp.join(ctx.parts_dir, f'benchmark_{method}_{precision}.json')
    amp = ctx.amp if precision == 'bf16' else 'none'
    cmd = [
        sys.executable,
        osp.join(HERE, 'benchmark_train.py'), config, '--device', ctx.device,
        '--amp', amp, '--out', json_out
    ]
    if ctx.small:
        cmd += ['--warmup', '0', '--iters', '1', '--loader-batches', '2']
    else:
        cmd += ['--warmup', '3', '--iters', '10', '--loader-batches', '20']
    if precision == 'fp32':
        # the reference-style rows are fp32 already (the bf16 parts time
        # them); the loader does not depend on the precision
        cmd += ['--skip-baseline', '--skip-loader']
    cmd += [
        '--markdown', '--cfg-options',
        f'train_dataloader.dataset.data_root={ctx.sysu_root}/'
    ]
    if ctx.small:
        cmd += ['train_dataloader.persistent_workers=False']
    run(cmd, ctx)
    with open(json_out) as f:
        result = json.load(f)
    result['config'] = config
    result['precision'] = 'fp32' if amp == 'none' else amp
    if precision == 'bf16' and amp == 'none':
        result['note'] = f'bf16 needs CUDA; measured in fp32 on {ctx.device}'
    return result


def _no_pretrained(node) -> None:
    """Random weights: drop every ``pretrained`` of a model config (no
    download, and the GPU host has no network)."""
    if hasattr(node, 'items'):
        for key, value in list(node.items()):
            if key == 'pretrained':
                node[key] = None
            else:
                _no_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _no_pretrained(value)


def part_eval_sysu(ctx: Context) -> dict:
    """Extraction and the 10-trial metric over the synthetic SYSU test
    split with the real recipe's model (random weights)."""
    import torch
    from scale_rehearsal import build_test_model, evaluate, load_config

    from mmvireid.registry import DATASETS
    from mmvireid.utils import register_all_modules
    register_all_modules()
    torch.backends.cudnn.benchmark = ctx.cuda
    config = _bench_config(ctx, 'csdn')
    image_cache = dict(dir='cache', num_workers=min(8, os.cpu_count() or 1))
    cfg = load_config(config, ctx.sysu_root, osp.join(ctx.data_dir, 'eval'),
                      image_cache, None, 5 if ctx.small else None)
    if not ctx.small:
        _no_pretrained(cfg.model)
    model = build_test_model(cfg, None, ctx.device)
    metrics = [(mode, dict(protocol='sysu', gallery_mode=mode))
               for mode in ('single', 'multi')]
    if ctx.small:
        metrics = [(n, dict(m, max_rank=5)) for n, m in metrics]
    amp = 'bf16' if ctx.cuda else None
    # the test split's image cache, built once per data (a rerun opens it)
    start = time.perf_counter()
    DATASETS.build(cfg.test_dataloader.dataset)
    first_build_s = time.perf_counter() - start
    result = evaluate(model, cfg, {}, metrics, ctx.device, amp)
    result.update(
        config=config,
        precision=amp or 'fp32',
        first_build_s=first_build_s,
        batch_size=cfg.test_dataloader.batch_size,
        num_workers=cfg.test_dataloader.num_workers)
    return result


def part_toy_amp(ctx: Context) -> dict:
    """csdn_toy with and without bf16, two seeds each (one with
    ``--small``), trained at once: the last evaluation's Rank-1."""
    from toy_benchmark import parse_logs, train_command
    config = osp.join(REPO_ROOT, 'configs', 'csdn_toy.py')
    runs_dir = osp.join(ctx.data_dir, 'toy_amp_runs')
    shutil.rmtree(runs_dir, ignore_errors=True)
    extra = []
    if ctx.small:
        config = _write_small_toy_config(runs_dir)
        extra = [f'model.num_classes={sysu_num_classes(ctx.toy_root)}']
    runs = []
    # --small: one seed each, the path and not the statistics
    seeds = (0, ) if ctx.small else (0, 1)
    for precision in ('bf16', 'fp32'):
        for seed in seeds:
            out_dir = osp.join(runs_dir, f'{precision}_seed{seed}')
            cmd = train_command(config, ctx.toy_root, seed, out_dir, extra)
            if precision == 'bf16' and ctx.cuda:
                cmd.insert(cmd.index('--cfg-options'), '--amp')
                cmd.insert(cmd.index('--cfg-options'), 'bf16')
            runs.append(
                dict(precision=precision, seed=seed, out_dir=out_dir, cmd=cmd))
    env = ctx.env()
    env['OMP_NUM_THREADS'] = '1' if ctx.small else '2'

    def train(run_info: dict) -> dict:
        start = time.perf_counter()
        with open(run_info['out_dir'] + '.log', 'w') as log:
            proc = subprocess.run(
                run_info['cmd'],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            with open(run_info['out_dir'] + '.log') as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f'training {run_info["precision"]} seed '
                               f'{run_info["seed"]} failed:\n{tail}')
        parsed = parse_logs(run_info['out_dir'])
        return dict(
            precision=run_info['precision'],
            seed=run_info['seed'],
            seconds=time.perf_counter() - start,
            rank1=parsed['metrics']['Rank-1'],
            mAP=parsed['metrics']['mAP'])

    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(train, runs))
    out = dict(runs=results, config=osp.relpath(config, REPO_ROOT))
    for precision in ('bf16', 'fp32'):
        values = [r['rank1'] for r in results if r['precision'] == precision]
        out[f'{precision}_rank1_mean'] = sum(values) / len(values)
    if not ctx.cuda:
        out['note'] = (f'bf16 needs CUDA; both rows trained in fp32 on '
                       f'{ctx.device}')
    return out


def sysu_num_classes(root: str) -> int:
    """Training identities of a SYSU-layout root (train + val lists)."""
    ids = set()
    for name in ('train_id.txt', 'val_id.txt'):
        with open(osp.join(root, 'exp', name)) as f:
            ids |= {int(x) for x in f.readline().split(',') if x.strip()}
    return len(ids)


def _write_small_toy_config(folder: str) -> str:
    """csdn_toy cut to one epoch of 3 iterations per stage (``--small``)."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, 'csdn_toy_small.py')
    base = osp.join(REPO_ROOT, 'configs', 'csdn_toy.py')
    with open(path, 'w') as f:
        f.write(f"""_base_ = [{base!r}]
train_cfg = dict(
    stages=[
        dict(name='prompt', epochs=1, validate=False,
             feature_cache=dict(mode='paired', batch_size=32,
                                drop_last=True)),
        dict(name='fusion', epochs=1, validate=False,
             feature_cache=dict(mode='sampled', batch_size=64,
                                drop_last=True)),
        dict(name='finetune', epochs=1),
    ],
    val_interval=1, max_iters_per_epoch=3)
param_scheduler = dict(
    prompt=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    fusion=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    finetune=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
val_evaluator = dict(max_rank=5)
test_evaluator = dict(max_rank=5)
default_hooks = dict(checkpoint=None)
""")
    return path


def _tiny_tokenizer(prompts: List[str]):
    """A byte-level BPE tokenizer trained here on the prompts (nothing is
    downloaded): the LLaVA-1.5 special tokens and ``<image>``."""
    from tokenizers import (Tokenizer, decoders, models, pre_tokenizers,
                            trainers)
    from transformers import PreTrainedTokenizerFast
    specials = ['<unk>', '<s>', '</s>', '<pad>', '<image>']
    bpe = Tokenizer(models.BPE(unk_token='<unk>'))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        prompts * 4,
        trainers.BpeTrainer(
            vocab_size=512,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token='<unk>',
        bos_token='<s>',
        eos_token='</s>',
        pad_token='<pad>',
        additional_special_tokens=['<image>'])


def build_llava(small: bool, device: str, dtype):
    """LLaVA-1.5-7B's architecture with random weights (``small``: a tiny
    one of the same layout) and its processor; built on ``device``.

    7B: CLIP ViT-L/14 at 336 px (24 layers, width 1024, the second-last
    layer's 576 patch tokens), a two-layer GELU projector, and the
    Vicuna-7B / Llama-2 decoder (32 layers, width 4096, MLP 11008, 32
    heads, vocabulary 32064). The tokenizer is a small one trained here on
    the prompts (the hub's cannot be downloaded on the GPU host); it only
    changes which token ids appear, not the cost of a step.

    Returns:
        tuple: ``(model, processor)``.
    """
    import generate_descriptions as gd
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig,
                              LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    tokenizer = _tiny_tokenizer([gd.VIS_PROMPT, gd.IR_PROMPT])
    side, patch = (28, 14) if small else (336, 14)
    if small:
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=side,
            patch_size=patch,
            projection_dim=32)
        text = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(tokenizer))
    else:
        vision = CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=side,
            patch_size=patch,
            projection_dim=768)
        text = dict(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32064)
    config = LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(
            max_position_embeddings=4096,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **text),
        image_token_index=tokenizer.convert_tokens_to_ids('<image>'),
        image_seq_length=(side // patch)**2,
        vision_feature_select_strategy='default',
        vision_feature_layer=-2,
        projector_hidden_act='gelu')
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default_dtype)
    model.eval()
    # random weights: greedy decoding may pick any token of the vocabulary;
    # the ids the small tokenizer lacks decode to nothing. The token count
    # is fixed by min_new_tokens (see part_llava).
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={'shortest_edge': side},
            crop_size={
                'height': side,
                'width': side
            }),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy='default',
        num_additional_image_tokens=1,
        chat_template=gd.LLAVA_CHAT_TEMPLATE)
    return model, processor


def part_llava(ctx: Context) -> dict:
    """Images described per second by the vlm captioner (LLaVA-1.5-7B
    architecture, random weights)."""
    import importlib.util
    if importlib.util.find_spec('transformers') is None:
        return dict(skipped='transformers is not installed')
    import generate_descriptions as gd
    import numpy as np
    import torch
    from PIL import Image
    dtype_name = 'bfloat16' if ctx.cuda else 'float32'
    dtype = gd.resolve_dtype(dtype_name, ctx.device)
    start = time.perf_counter()
    model, processor = build_llava(ctx.small, ctx.device, dtype)
    build_s = time.perf_counter() - start
    new_tokens = 8 if ctx.small else 64
    # every caption as long as a real one, whatever the random weights say
    model.generation_config.min_new_tokens = new_tokens
    # the tool's own captioner: the same prompts, padding, processor call
    # and greedy generate as a model loaded by name
    captioner = gd.VLMCaptioner.from_model(
        model,
        processor,
        device=ctx.device,
        dtype=dtype_name,
        max_new_tokens=new_tokens)
    # toy images of both modalities, as the tool gets them (RGB, 2:1)
    rng = np.random.default_rng(0)
    files = []
    for cam in ('cam1', 'cam3'):
        folder = osp.join(ctx.toy_root, cam)
        for pid in sorted(os.listdir(folder))[:32]:
            sub = osp.join(folder, pid)
            files += [osp.join(sub, n) for n in sorted(os.listdir(sub))[:1]]
    images = [Image.open(p).convert('RGB') for p in files]
    prompts = [gd.IR_PROMPT if '/cam3/' in p else gd.VIS_PROMPT for p in files]
    order = rng.permutation(len(images))
    batches = (4, ) if ctx.small else (16, 64)
    out = dict(
        architecture='tiny LLaVA layout'
        if ctx.small else 'LLaVA-1.5-7B (CLIP ViT-L/14-336 + Vicuna-7B)',
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        dtype=str(dtype).replace('torch.', ''),
        new_tokens=new_tokens,
        build_s=build_s,
        batches={})
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    for batch in batches:
        picks = [int(order[i % len(order)]) for i in range(batch)]
        batch_images = [images[i] for i in picks]
        batch_prompts = [prompts[i] for i in picks]
        captioner(batch_images[:2], batch_prompts[:2])  # warm-up
        if ctx.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        texts = captioner(batch_images, batch_prompts)
        if ctx.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        out['batches'][str(batch)] = dict(
            seconds=seconds,
            img_per_s=batch / seconds,
            tokens_per_s=batch * new_tokens / seconds,
            texts=len(texts))
    best = max(b['img_per_s'] for b in out['batches'].values())
    out['img_per_s'] = best
    out['sysu_train_hours'] = SYSU_TRAIN_IMAGES / best / 3600
    if ctx.cuda:
        out['peak_mem_mib'] = torch.cuda.max_memory_allocated() / 2**20
    return out


PART_FUNCS: Dict[str, Callable[[Context], dict]] = dict(
    setup=part_setup,
    eval_sysu=part_eval_sysu,
    toy_amp=part_toy_amp,
    llava=part_llava)
for _name, (_method, _precision) in BENCH_PARTS.items():
    PART_FUNCS[_name] = (lambda m, p: lambda ctx: part_bench(ctx, m, p))(
        _method, _precision)


def run_part(name: str, ctx: Context) -> None:
    """In the part's own process: run it and write its result file."""
    result = PART_FUNCS[name](ctx)
    with open(osp.join(ctx.parts_dir, f'{name}.json'), 'w') as f:
        json.dump(result, f, indent=1)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------
def launch_part(name: str, ctx: Context, limit: float, argv: List[str]) \
        -> dict:
    """Run one part in a child process under ``limit`` seconds."""
    log_path = osp.join(ctx.parts_dir, f'{name}.log')
    result_path = osp.join(ctx.parts_dir, f'{name}.json')
    if osp.exists(result_path):
        os.remove(result_path)
    cmd = [sys.executable, osp.abspath(__file__), '--part', name] + argv
    start = time.perf_counter()
    status, error = 'ok', None
    with open(log_path, 'w') as log:
        # its own session: on a timeout the whole group (DataLoader workers,
        # trainings) is stopped
        proc = subprocess.Popen(
            cmd,
            env=ctx.env(),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            code = proc.wait(timeout=max(1., limit))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            status, error = 'timeout', f'stopped after its limit of ' \
                f'{limit:.0f} s'
            code = None
    seconds = time.perf_counter() - start
    if code not in (0, None):
        status = 'error'
        with open(log_path, errors='replace') as f:
            error = f.read()[-3000:]
    result = None
    if status == 'ok':
        with open(result_path) as f:
            result = json.load(f)
        if 'skipped' in result:
            status, error = 'skipped', result['skipped']
    print(
        f'[gpu_check] {name}: {status} in {seconds:.0f} s' +
        (f' ({error.splitlines()[-1]})' if error else ''),
        flush=True)
    return dict(
        status=status,
        seconds=seconds,
        limit_s=limit,
        result=result,
        error=error)


def _kill_group(proc: subprocess.Popen) -> None:
    import signal
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def device_meta(ctx: Context) -> dict:
    import torch
    meta = dict(
        device=ctx.device,
        small=ctx.small,
        torch=torch.__version__,
        python=platform.python_version(),
        cpu_count=os.cpu_count(),
        host=platform.node())
    if ctx.cuda and torch.cuda.is_available():
        meta['device_name'] = torch.cuda.get_device_name(0)
        meta['gpu_memory_gib'] = \
            torch.cuda.get_device_properties(0).total_memory / 2**30
    else:
        meta['device_name'] = platform.processor() or 'CPU'
    try:
        meta['transformers'] = __import__('transformers').__version__
    except ImportError:
        meta['transformers'] = None
    return meta


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------
def _f(value, spec='.1f', missing='-'):
    return missing if value is None else format(value, spec)


def markdown_rows(parts: Dict[str, dict], meta: dict) -> str:
    """The rows of docs/en/benchmarks.md's GPU tables from the results."""
    card = meta.get('device_name', meta['device'])
    lines = [
        f'Measured by tools/analysis_tools/gpu_check.sh on {card} '
        f'(torch {meta["torch"]}{", --small" if meta["small"] else ""}'
        ').', '', '| config | stage | precision | batch | mmvireid items/s | '
        'reference-style items/s | ratio | peak MiB (ours / ref) |',
        '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |'
    ]
    for name in BENCH_PARTS:
        part = parts.get(name, {})
        res = part.get('result')
        config = _bench_config_name(name, meta)
        if part.get('status') != 'ok' or not res:
            lines.append(f'| {config} | all stages | {BENCH_PARTS[name][1]} '
                         f'| | {part.get("status", "not run")} | | - | - |')
            continue
        rows = {(r['stage'], r['variant']): r for r in res['steps']}
        for stage in dict.fromkeys(r['stage'] for r in res['steps']):
            mine = rows.get((stage, 'mmvireid'))
            ref = rows.get((stage, 'reference-style'))
            if mine is None:
                continue
            ratio = res['ratios'].get(stage)
            lines.append(f'| {config} | {stage} ({mine["kind"]}) | '
                         f'{mine["precision"]} | {mine["batch"]} | '
                         f'{mine["items_per_s"]:.1f} | '
                         f'{_f(ref and ref["items_per_s"])} | '
                         f'{_f(ratio, ".2f")}{"x" if ratio else ""} | '
                         f'{_f(mine["peak_mem_mib"], ".0f")} / '
                         f'{_f(ref and ref["peak_mem_mib"], ".0f")} |')
    lines += ['', '| | measured |', '| --- | --- |']
    for name in ('train_csdn_bf16', 'train_eees_bf16'):
        res = (parts.get(name) or {}).get('result') or {}
        config = _bench_config_name(name, meta)
        estimate = res.get('estimate')
        if estimate:
            per_stage = '; '.join(
                f'{stage} ' + ' / '.join(f'{v["epoch_min"]:.2f}'
                                         for v in variants.values())
                for stage, variants in estimate['stages'].items())
            total = ' / '.join(f'{m:.1f}'
                               for m in estimate['total_min'].values())
            lines.append(f'| {config}: min per epoch, mmvireid / '
                         f'reference-style | {per_stage} |')
            lines.append(f'| {config}: full recipe, training only (min), '
                         f'mmvireid / reference-style | {total} |')
        for row in res.get('steps', []):
            if 'extract_img_per_s' in row:
                lines.append(
                    f'| {config}: feature-cache extraction ({row["stage"]}, '
                    f'{row["precision"]}) | {row["extract_img_per_s"]:.0f} '
                    'img/s |')
        loader = res.get('loader')
        if loader:
            lines.append(
                f'| {config}: train loader, {loader["num_workers"]} workers, '
                f'batch {loader["batch"]} | {loader["items_per_s"]:.0f} '
                f'img/s ({loader["source"]}) |')
    ev = (parts.get('eval_sysu') or {}).get('result')
    if ev:
        metric_text = ', '.join(f'{n} {m["seconds"]:.2f} s'
                                for n, m in ev['metrics'].items())
        size = 'small' if meta['small'] else 'full-size'
        lines.append(
            f'| synthetic {size} SYSU test split ({ev["items"]} images, '
            f'{ev["config"]}, {ev["precision"]}, batch {ev["batch_size"]}, '
            f'{ev["num_workers"]} workers) | extraction {ev["extract_s"]:.1f}'
            f' s ({ev["img_per_s"]:.0f} img/s); metric, 10 trials: '
            f'{metric_text}; first build of the split (image cache) '
            f'{ev["first_build_s"]:.1f} s |')
    toy = (parts.get('toy_amp') or {}).get('result')
    if toy:
        by = {
            p:
            ', '.join(f'{r["rank1"]:.2f}' for r in toy['runs']
                      if r['precision'] == p)
            for p in ('bf16', 'fp32')
        }
        note = f' ({toy["note"]})' if 'note' in toy else ''
        seeds = ', '.join(
            str(r['seed']) for r in toy['runs'] if r['precision'] == 'fp32')
        lines.append(
            f'| AMP (bf16) vs fp32 toy Rank-1, {toy["config"]}, seeds {seeds} '
            f'| bf16 {by["bf16"]} (mean {toy["bf16_rank1_mean"]:.2f}); fp32 '
            f'{by["fp32"]} (mean {toy["fp32_rank1_mean"]:.2f}){note} |')
    llava = parts.get('llava') or {}
    if llava.get('status') == 'ok':
        res = llava['result']
        batches = '; '.join(f'batch {b}: {v["img_per_s"]:.2f} img/s'
                            for b, v in res['batches'].items())
        lines.append(
            f'| descriptions, {res["architecture"]}, random weights, '
            f'{res["dtype"]}, {res["new_tokens"]} new tokens | {batches}; '
            f'SYSU-MM01 train ({SYSU_TRAIN_IMAGES} images) '
            f'{res["sysu_train_hours"]:.1f} h |')
    elif llava:
        lines.append(f'| descriptions (LLaVA-1.5-7B architecture) | '
                     f'{llava.get("status")}: {llava.get("error")} |')
    return '\n'.join(lines)


def _bench_config_name(part: str, meta: dict) -> str:
    method = BENCH_PARTS[part][0]
    return f'{method}_{"toy" if meta["small"] else "sysu"}.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='The GPU measurements of docs/en/benchmarks.md in one '
        'call, each part under its own time limit.')
    parser.add_argument(
        '--device', default=None, help='cuda (default when available) or cpu')
    parser.add_argument(
        '--small',
        action='store_true',
        help='everything tiny: toy data and configs, one '
        'or two steps, a tiny LLaVA (CI)')
    parser.add_argument(
        '--out',
        default='work_dirs/gpu_check',
        help='folder of gpu_check.json, gpu_check.md and '
        'the part logs')
    parser.add_argument(
        '--data-dir',
        default='data/gpu_check',
        help='generated data, caches and toy runs (kept '
        'for a rerun; not under --out, which may be copied '
        'back from a GPU host)')
    parser.add_argument(
        '--budget',
        type=float,
        default=None,
        help='seconds for all parts together (default 470 '
        'on a GPU, 300 with --small); a part gets at most '
        'what is left')
    parser.add_argument(
        '--parts',
        nargs='+',
        choices=PARTS,
        help='run only these parts (setup always runs)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='parts run at once after setup (default 1 on '
        'a GPU, so that timings are clean; 2 with --small)')
    parser.add_argument('--part', choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device is None:
        import torch
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return args


def main(argv=None) -> Optional[dict]:
    args = parse_args(argv)
    ctx = Context(args)
    os.makedirs(ctx.parts_dir, exist_ok=True)
    os.makedirs(ctx.data_dir, exist_ok=True)
    if args.part:
        run_part(args.part, ctx)
        return None
    budget = args.budget or (300. if ctx.small else 470.)
    jobs = args.jobs or (2 if ctx.small else 1)
    forwarded = [
        '--device', ctx.device, '--out', ctx.out, '--data-dir', ctx.data_dir
    ] + (['--small'] if ctx.small else [])
    names = [
        p for p in PARTS if p == 'setup' or not args.parts or p in args.parts
    ]
    start = time.perf_counter()
    meta = device_meta(ctx)
    meta.update(
        budget_s=budget,
        jobs=jobs,
        command=' '.join([osp.basename(sys.executable)] + sys.argv))
    parts: Dict[str, dict] = {}

    def launch(name: str) -> dict:
        left = budget - (time.perf_counter() - start)
        if left < 5:
            return dict(
                status='skipped',
                seconds=0.,
                limit_s=0.,
                result=None,
                error='the budget ran out')
        limit = min(PART_LIMITS[name][1 if ctx.small else 0], left)
        return launch_part(name, ctx, limit, forwarded)

    parts['setup'] = launch('setup')
    rest = names[1:]
    if parts['setup']['status'] != 'ok':
        for name in rest:
            parts[name] = dict(
                status='skipped',
                seconds=0.,
                limit_s=0.,
                result=None,
                error='setup failed')
    elif jobs <= 1:
        for name in rest:
            parts[name] = launch(name)
    else:
        with ThreadPoolExecutor(jobs) as pool:
            for name, outcome in zip(rest, pool.map(launch, rest)):
                parts[name] = outcome
    meta['total_s'] = time.perf_counter() - start
    report = dict(meta=meta, parts=parts)
    with open(osp.join(ctx.out, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1)
    rows = markdown_rows(parts, meta)
    with open(osp.join(ctx.out, 'gpu_check.md'), 'w') as f:
        f.write(rows + '\n')
    print('\n' + rows)
    print(f'\n[gpu_check] {len(parts)} parts in {meta["total_s"]:.0f} s: ' +
          ', '.join(f'{n} {p["status"]}' for n, p in parts.items()))
    print(f'[gpu_check] written: {osp.join(ctx.out, "gpu_check.json")}, '
          f'{osp.join(ctx.out, "gpu_check.md")}')
    return report


if __name__ == '__main__':
    main()
