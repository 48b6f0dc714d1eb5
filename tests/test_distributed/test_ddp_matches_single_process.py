# Copyright (c) mmvireid contributors. All rights reserved.
"""Two DDP processes equal one process with the same global batch.

Each method trains through all its stages twice, from the same seed:

* **DDP**: ``tools/dist_train.sh CONFIG 2`` (torchrun, ``--launcher
  pytorch``, gloo on CPU), ``P`` identities x ``K`` images per modality and
  rank, feature-cache batches of ``B`` per rank;
* **single**: ``tools/train.py`` with ``2P`` identities and ``2B`` features
  per batch.

:mod:`train_probe` records every rank's losses, feature caches and
``state_dict`` after every stage. The tests check that the ranks hold
identical models (parameters *and* buffers, bit for bit) after every stage
switch, that every rank caches every feature, and that the DDP run's
losses (mean over ranks) and parameters equal the single run's within
1e-5 — so no parameter escapes gradient sync in any stage, the sampler shards
the global batch, and the caches are gathered completely.

Why the two runs are comparable exactly (the test config, documented):

* **Same draws.** ``CrossModalIdentitySampler`` with ``w`` ranks draws
  ``w * P`` identities per step in one call and gives rank ``r`` the ``r``-th
  ``P``; one process with ``2P`` identities makes the same calls. Cache
  batches: rank ``r`` takes positions ``r::2`` of the shared permutation, so
  the two ranks' batch ``b`` is the single run's batch ``b`` (the caches
  hold an even number of features or pairs, so the halves are equal).
* **Per-sample losses.** DDP averages the gradients of per-rank losses;
  that equals the gradient of the full-batch loss only for losses that are
  means over samples with equal halves. SupCon, hard-mining triplet and
  MSEL compare samples across the batch (a rank only sees its half), so the
  test config uses a per-sample cosine prompt loss and triplet weight 0
  (CSDN: ``msel_loss=None``); ID and image-to-text CE are per-sample as is.
* **BatchNorm on the global batch.** The BNNeck BN normalises with batch
  statistics; per-rank halves differ from the full batch.
  ``torch.nn.SyncBatchNorm`` (``sync_bn='torch'``) fixes that on GPUs but
  refuses CPU tensors, so :class:`train_probe.GlooSyncBNHook` gives the BN
  layers the same semantics over gloo. The tiny ViT has only LayerNorm.
* **Deterministic inputs.** Random augmentation draws from each process'
  RNG stream in a different order, so the train pipeline is the test one;
  CSDN trains without second views and fusion dropout.
* **SGD.** Both runs differ by float32 rounding (matrix products of another
  batch size sum in another order, ~1e-7). Adam's ``m / sqrt(v)`` turns such
  differences in near-zero gradients into steps of size ``lr``; SGD keeps
  them at rounding level. Gradient sync does not depend on the optimiser.
* **Caches in the same order.** The shuffled cache is ordered by dataset
  index; the paired caches (CSDN) are gathered step by step, rank by rank,
  the order of one process drawing ``2P`` identities per step. So every
  cache batch, the last incomplete one dropped or not, holds the same
  features in both runs.
"""
import os.path as osp

import pytest
import torch
import torch.distributed as dist
from launch_utils import (REPO_ROOT, child_env, dist_train_cmd, free_port,
                          make_toy_data, read_jsonl, start, train_cmd, wait_ok,
                          write_config)

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason='needs torch.distributed with gloo')

WORLD = 2
P, K = 2, 4  # identities and images per modality, per rank
NUM_TRAIN_IMAGES = 164  # the 12-id toy set: 8 train ids
STEPS = 104 // (P * K * WORLD) + 1  # sampler steps per epoch (104 visible)
CACHE_PAIRS = STEPS * WORLD * P * K  # CSDN's paired cache

COMMON = '''
custom_imports = dict(imports=['train_probe'], allow_failed_imports=False)
data_root = '{data_root}'
train_dataloader = dict(
    batch_size={batch},
    sampler=dict(num_ids={num_ids}, num_instances={K}),
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=100, save_best=None))
custom_hooks = [
    dict(type='StageSwitchHook'), dict(type='SyncBuffersHook'),
    dict(type='GlooSyncBNHook'), dict(type='TrainProbeHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=7, deterministic=True)
log_level = 'WARNING'
'''

# The tiny ViT CLIP and the 128x64 toy pipelines, from the base files
# (not the leaf toy configs, which may change backbone or schedule).
BASES = '''
_base_ = [
    '{repo}/configs/_base_/models/clip_vireid_tiny_vit.py',
    '{repo}/configs/_base_/datasets/toy_sysu.py',
    '{repo}/configs/_base_/schedules/{schedule}.py',
    '{repo}/configs/_base_/default_runtime.py',
]
clip_arch = {{{{_base_.clip_arch}}}}
test_pipeline = {{{{_base_.test_pipeline}}}}
'''

CLIP_VIREID = '''
model = dict(
    num_classes=8,
    prompt_loss=dict(type='PerSampleCosineLoss'),
    triplet_loss=dict(loss_weight=0.0))
train_cfg = dict(stages=[
    dict(name='prompt', epochs=2, validate=False,
         feature_cache=dict(pipeline=test_pipeline, batch_size={cache_batch},
                            extract_batch_size=32)),
    dict(name='finetune', epochs=2)])
param_scheduler = dict(
    prompt=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    finetune=[dict(type='MultiStepLR', milestones=[1], gamma=0.5,
                   by_epoch=True)])
optim_wrapper = dict(
    prompt=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05,
                               momentum=0.9)),
    finetune=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.002,
                                 momentum=0.9, weight_decay=5e-4)))
'''

CSDN = '''
model = dict(
    _delete_=True,
    type='CSDN',
    num_classes=8,
    data_preprocessor=dict(
        type='VIReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    image_encoder=dict(
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained=None,
        input_size=(128, 64),
        stride_size=16,
        modality_specific_stem=True),
    text_encoder=dict(type='CLIPTextEncoder', arch=clip_arch, pretrained=None),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=64),
    prompt_loss=dict(type='PerSampleCosineLoss'),
    msel_loss=None,
    triplet_loss=dict(type='WRTTripletLoss', loss_weight=0.0),
    fusion=dict(type='SIIFusion', dropout=0.0),
    class_text_dropout=False)
train_cfg = dict(stages=[
    dict(name='prompt', epochs=2, validate=False,
         feature_cache=dict(mode='paired', pipeline=test_pipeline,
                            batch_size={pair_batch}, drop_last=True)),
    dict(name='fusion', epochs=2, validate=False,
         feature_cache=dict(mode='sampled', pipeline=test_pipeline,
                            batch_size={sampled_batch}, drop_last=True)),
    dict(name='finetune', epochs=2)])
param_scheduler = dict(
    prompt=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    fusion=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    finetune=[dict(type='MultiStepLR', milestones=[1], gamma=0.5,
                   by_epoch=True)])
optim_wrapper = dict(
    prompt=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05,
                               momentum=0.9)),
    fusion=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05,
                               momentum=0.9)),
    finetune=dict(optimizer=dict(_delete_=True, type='SGD', lr=0.002,
                                 momentum=0.9, weight_decay=5e-4)))
'''

#: stage -> the modules it trains (the others must not move in it)
METHODS = dict(
    clip_vireid=dict(
        template=CLIP_VIREID,
        schedule='clip_vireid_2stage',
        stages=dict(
            prompt=('prompt_learner.', ),
            finetune=('image_encoder.', 'head.'))),
    csdn=dict(
        template=CSDN,
        schedule='csdn_3stage',
        stages=dict(
            prompt=('prompt_learner_vis.', 'prompt_learner_ir.'),
            fusion=('fusion.', ),
            finetune=('image_encoder.', 'head.'))))


def _config(method: str, world: int, data_root: str, path: str) -> str:
    num_ids = P * WORLD // world  # the same global batch in both runs
    text = BASES + METHODS[method]['template'] + COMMON
    return write_config(
        path,
        text.format(
            repo=REPO_ROOT,
            schedule=METHODS[method]['schedule'],
            data_root=data_root,
            batch=2 * num_ids * K,
            num_ids=num_ids,
            K=K,
            cache_batch=32 // world,
            pair_batch=32 // world,
            sampled_batch=64 // world))


@pytest.fixture(scope='module')
def toy12(tmp_path_factory):
    return make_toy_data(str(tmp_path_factory.mktemp('ddp_data') / 'toy'))


@pytest.fixture(scope='module', params=sorted(METHODS))
def runs(request, toy12, tmp_path_factory):
    """Train the method with 2 DDP processes and with 1 process, side by
    side. Returns ``(method, ddp probe dir, single probe dir)``."""
    method = request.param
    root = tmp_path_factory.mktemp(f'ddp_{method}')
    dirs = {}
    procs = []
    for name, world in (('ddp', WORLD), ('single', 1)):
        cfg = _config(method, world, toy12, str(root / f'{name}.py'))
        probe = str(root / f'probe_{name}')
        work_dir = str(root / f'work_{name}')
        log = str(root / f'{name}.log')
        if world > 1:
            cmd = dist_train_cmd(cfg, work_dir, world)
            env = child_env(probe, PORT=str(free_port()))
        else:
            cmd = train_cmd(cfg, work_dir)
            env = child_env(probe)
        procs.append((start(cmd, env, log), log))
        dirs[name] = probe
    for proc, log in procs:
        wait_ok(proc, log)
    return method, dirs['ddp'], dirs['single']


def _state(probe: str, rank: int, tag: str) -> dict:
    return torch.load(
        osp.join(probe, f'state_rank{rank}_{tag}.pt'), weights_only=True)


def _cache(probe: str, rank: int, stage: str) -> dict:
    return torch.load(
        osp.join(probe, f'cache_rank{rank}_{stage}.pt'), weights_only=True)


def test_ranks_hold_identical_models_after_every_stage(runs):
    method, ddp, _ = runs
    for tag in ['init'] + list(METHODS[method]['stages']):
        rank0, rank1 = _state(ddp, 0, tag), _state(ddp, 1, tag)
        assert rank0.keys() == rank1.keys()
        differ = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
        assert not differ, f'after "{tag}" the ranks differ in {differ[:10]}'


def test_each_stage_trains_its_modules_only(runs):
    """The DDP run moves exactly the modules of each stage: trained ones by
    far more than the tolerance below, the others not at all."""
    method, ddp, _ = runs
    before = _state(ddp, 0, 'init')
    for stage, modules in METHODS[method]['stages'].items():
        after = _state(ddp, 0, stage)
        # parameters and the class text features; BN statistics move with
        # any forward pass in train mode
        moved = {
            k: (after[k] - before[k]).abs().max().item()
            for k in after
            if after[k].is_floating_point() and 'running_' not in k
        }
        trained = [k for k in moved if k.startswith(modules)]
        assert max(moved[k] for k in trained) > 1e-3, stage
        frozen = [
            k for k in moved if not k.startswith(modules)
            and k != 'class_text_feats' and moved[k] != 0
        ]
        assert not frozen, f'stage "{stage}" moved {frozen[:10]}'
        before = after


def test_every_rank_caches_every_feature(runs):
    method, ddp, single = runs
    expected = dict(
        clip_vireid=dict(prompt=NUM_TRAIN_IMAGES),
        csdn=dict(prompt=2 * CACHE_PAIRS, fusion=2 * CACHE_PAIRS))[method]
    for stage, size in expected.items():
        rank0, rank1 = _cache(ddp, 0, stage), _cache(ddp, 1, stage)
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), (stage, key)
        assert len(rank0['feats']) == size
        # the single run's cache, in the same order (CLIP-VIReID: one
        # feature per train image in dataset order, each image once)
        ref = _cache(single, 0, stage)
        assert torch.equal(rank0['labels'], ref['labels'])
        assert torch.equal(rank0['modalities'], ref['modalities'])
        torch.testing.assert_close(
            rank0['feats'], ref['feats'], rtol=1e-5, atol=1e-5)


def test_losses_equal_single_process(runs):
    method, ddp, single = runs
    rank0 = read_jsonl(osp.join(ddp, 'losses_rank0.jsonl'))
    rank1 = read_jsonl(osp.join(ddp, 'losses_rank1.jsonl'))
    ref = read_jsonl(osp.join(single, 'losses_rank0.jsonl'))
    assert ref and len(rank0) == len(rank1) == len(ref)
    assert [r['stage'] for r in ref][-1] == 'finetune'
    for a, b, want in zip(rank0, rank1, ref):
        assert (a['epoch'], a['iter'],
                a['stage']) == (want['epoch'], want['iter'], want['stage'])
        for key, value in want['losses'].items():
            if not key.startswith('loss'):
                continue
            mean = (a['losses'][key] + b['losses'][key]) / 2
            assert mean == pytest.approx(
                value, rel=1e-5, abs=1e-6), (a['iter'], key)
    # the ranks really saw different halves of each image batch
    finetune = [(a['losses']['loss'], b['losses']['loss'])
                for a, b in zip(rank0, rank1) if a['stage'] == 'finetune']
    assert max(abs(x - y) for x, y in finetune) > 1e-2


def test_parameters_equal_single_process(runs):
    method, ddp, single = runs
    for tag in METHODS[method]['stages']:
        got, want = _state(ddp, 0, tag), _state(single, 0, tag)
        assert got.keys() == want.keys()
        for key, value in want.items():
            if value.is_floating_point():
                torch.testing.assert_close(
                    got[key],
                    value,
                    rtol=1e-5,
                    atol=1e-5,
                    msg=lambda m, k=key, t=tag: f'{t} {k}: {m}')
            else:
                assert torch.equal(got[key], value), (tag, key)
