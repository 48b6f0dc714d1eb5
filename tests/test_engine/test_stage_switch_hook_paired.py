# Copyright (c) mmvireid contributors. All rights reserved.
"""StageSwitchHook feature caches drawn from the identity sampler: 'paired'
(CSDN stage 1: batches of [B visible; B infrared] partners) and 'sampled'
(CSDN stage 2), next to the default 'shuffled' cache."""
import collections
import types

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

from mmvireid.datasets.feature_cache import (PairedCacheBatchSampler,
                                             build_feature_cache)
from mmvireid.datasets.samplers import CrossModalIdentitySampler
from mmvireid.engine.hooks import StageSwitchHook
from mmvireid.engine.runner import parse_stages
from mmvireid.engine.runner.multi_stage_loop import MultiStageTrainLoop
from mmvireid.registry import DATASETS
from mmvireid.utils import register_all_modules

register_all_modules()

P, K = 2, 2
STEP = 2 * P * K


@DATASETS.register_module(force=True)
class PairedCacheToySet:
    """Five identities with unequal image counts per modality. An item's
    "image" is ``scale * [index, label, modality]``, where ``scale`` comes
    from the pipeline, so a cached feature says which image it is and which
    pipeline read it."""

    def __init__(self, pipeline):
        self.scale = float(pipeline[0]['scale'])
        self.items = []
        for label in range(5):
            for modality, count in (('vis', 3 + label % 2), ('ir', 2)):
                self.items += [(label, modality)] * count

    def __len__(self):
        return len(self.items)

    def get_labels(self):
        return [label for label, _ in self.items]

    def get_modalities(self):
        return [modality for _, modality in self.items]

    def __getitem__(self, idx):
        label, modality = self.items[idx]
        sample = DataSample().set_gt_label(label)
        sample.set_metainfo(dict(modality=modality, sample_idx=idx))
        mod = 0. if modality == 'vis' else 1.
        return dict(
            inputs=self.scale * torch.tensor([float(idx), label, mod]),
            data_samples=sample)


class CacheModel(nn.Module):
    """Records stage switches and extraction batches; its cache feature is
    the input itself."""

    STAGES = ('prompt', 'fusion', 'finetune')

    def __init__(self):
        super().__init__()
        self.stages, self.extract_sizes, self.modes = [], [], []
        self.current_stage = None

    def switch_stage(self, name):
        if name != self.current_stage:
            self.stages.append(name)
        self.current_stage = name

    def extract_cache_features(self, batch):
        self.extract_sizes.append(len(batch['inputs']))
        self.modes.append(self.training)
        return torch.stack(batch['inputs'])


def make_runner(stages,
                seed=3,
                sampler_seed=5,
                val_scale=10.,
                num_ids=P,
                **sampler_kwargs):
    dataset_cfg = dict(type='PairedCacheToySet', pipeline=[dict(scale=1.)])
    dataset = DATASETS.build(dataset_cfg)
    image_loader = DataLoader(
        dataset,
        batch_size=2 * num_ids * K,
        sampler=CrossModalIdentitySampler(
            dataset,
            num_ids=num_ids,
            num_instances=K,
            seed=sampler_seed,
            **sampler_kwargs),
        collate_fn=pseudo_collate)
    loop = MultiStageTrainLoop.__new__(MultiStageTrainLoop)
    loop.stages = parse_stages(stages)
    loop.dataloader = image_loader
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dataset_cfg),
            val_dataloader=dict(
                dataset=dict(
                    type='PairedCacheToySet', pipeline=[dict(
                        scale=val_scale)]))))
    return types.SimpleNamespace(
        cfg=cfg,
        model=CacheModel(),
        seed=seed,
        _randomness_cfg={},
        epoch=0,
        max_epochs=loop.stages[-1].end,
        train_loop=loop,
        image_loader=image_loader,
        message_hub=MessageHub.get_instance('test_paired_cache'))


def enter(runner, epoch, hook=None):
    hook = hook or StageSwitchHook(reseed_every_epoch=False)
    if hook._image_loader is None:
        hook.before_train(runner)
    runner.epoch = epoch
    hook.before_train_epoch(runner)
    return hook, runner.train_loop.dataloader


def sampler_draw(runner, epoch, sampler_seed=5):
    """The pairs of an independent sampler with the image loader's
    settings, drawn for ``epoch``: position j of each step's visible half
    and of its infrared half."""
    dataset = runner.image_loader.dataset
    sampler = CrossModalIdentitySampler(
        dataset, num_ids=P, num_instances=K, seed=sampler_seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    pairs = []
    for start in range(0, len(indices), STEP):
        step = indices[start:start + STEP]
        pairs += list(zip(step[:P * K], step[P * K:]))
    return pairs


def batch_pairs(batch):
    """(visible index, infrared index) pairs of a paired batch, checking its
    layout on the way."""
    feats = batch['inputs'] / 10.  # the val pipeline's scale
    labels = batch['data_samples']['gt_label']
    mods = batch['data_samples']['modality']
    b = len(feats) // 2
    assert mods[:b].tolist() == [0] * b and mods[b:].tolist() == [1] * b
    assert torch.equal(labels[:b], labels[b:])
    assert torch.equal(feats[:, 1].long(), labels)
    return list(
        zip(feats[:b, 0].long().tolist(), feats[b:, 0].long().tolist()))


# ---------------------------------------------------------------------- #
def test_paired_cache_holds_the_sampler_draw_as_aligned_pairs():
    runner = make_runner([
        dict(
            name='prompt',
            epochs=3,
            validate=False,
            feature_cache=dict(mode='paired', batch_size=3)),
        dict(name='finetune', epochs=1),
    ])
    _, loader = enter(runner, 0)
    model = runner.model
    assert model.stages == ['prompt']
    # one identity-sampler step per extraction batch, in eval mode, then the
    # model's mode is restored
    assert set(model.extract_sizes) == {STEP}
    assert model.modes and not any(model.modes) and model.training
    assert isinstance(loader.batch_sampler, PairedCacheBatchSampler)

    expected = sampler_draw(runner, epoch=0)
    num_pairs = len(expected)
    assert sum(model.extract_sizes) == 2 * num_pairs
    got = []
    sizes = []
    for batch in loader:
        sizes.append(len(batch['inputs']) // 2)
        got += batch_pairs(batch)
    assert collections.Counter(got) == collections.Counter(expected)
    # batch_size=3 pairs, the last batch partial (drop_last=False)
    assert sizes == [3] * (num_pairs // 3) + ([num_pairs % 3] if num_pairs %
                                              3 else [])
    assert len(loader) == len(sizes)


def test_paired_cache_is_reshuffled_per_epoch_and_redrawn_on_resume():
    stages = [
        dict(
            name='prompt',
            epochs=3,
            validate=False,
            feature_cache=dict(mode='paired', batch_size=2, drop_last=True)),
        dict(name='finetune', epochs=1),
    ]
    runner = make_runner(stages)
    _, loader = enter(runner, 0)
    cache = loader.dataset
    num_pairs = len(sampler_draw(runner, epoch=0))
    assert len(loader) == num_pairs // 2  # drop_last: floor
    epoch0 = [p for b in loader for p in batch_pairs(b)]
    # what DistSamplerSeedHook does for a loader with a batch sampler
    loader.batch_sampler.sampler.set_epoch(1)
    epoch1 = [p for b in loader for p in batch_pairs(b)]
    assert epoch0 != epoch1
    assert collections.Counter(epoch0) == collections.Counter(epoch1)

    # a run resumed at epoch 2 (inside the stage) caches the same draw: the
    # one of the stage's first epoch
    resumed = make_runner(stages)
    _, loader = enter(resumed, 2)
    assert torch.equal(loader.dataset.feats, cache.feats)
    assert torch.equal(loader.dataset.labels, cache.labels)
    # and its epoch-2 order is the uninterrupted run's
    runner.train_loop.dataloader.batch_sampler.sampler.set_epoch(2)
    assert [p for b in loader for p in batch_pairs(b)] == [
        p for b in runner.train_loop.dataloader for p in batch_pairs(b)
    ]


def test_sampled_cache_for_the_fusion_stage():
    runner = make_runner([
        dict(
            name='prompt',
            epochs=2,
            validate=False,
            feature_cache=dict(mode='paired', batch_size=4)),
        dict(
            name='fusion',
            epochs=2,
            validate=False,
            feature_cache=dict(mode='sampled', batch_size=5, drop_last=True)),
        dict(name='finetune', epochs=1),
    ])
    hook, _ = enter(runner, 0)
    _, loader = enter(runner, 2, hook)
    assert runner.model.stages == ['prompt', 'fusion']
    draw = sampler_draw(runner, epoch=2)  # the fusion stage's first epoch
    cached = loader.dataset
    assert len(cached) == 2 * len(draw)
    expected = collections.Counter([v for v, _ in draw] + [i for _, i in draw])
    assert collections.Counter(
        (cached.feats[:, 0] / 10.).long().tolist()) == expected
    assert len(loader) == len(cached) // 5
    batches = list(loader)
    assert all(len(b['inputs']) == 5 for b in batches)
    # shuffled one by one: a batch mixes modalities freely
    mods = torch.cat([b['data_samples']['modality'] for b in batches])
    assert 0 < mods.float().mean() < 1


def test_shuffled_cache_reads_every_image_once_with_a_given_pipeline():
    runner = make_runner([
        dict(
            name='prompt',
            epochs=1,
            validate=False,
            feature_cache=dict(
                pipeline=[dict(scale=2.)], batch_size=4,
                extract_batch_size=7)),
        dict(name='finetune', epochs=1),
    ])
    _, loader = enter(runner, 0)
    num_images = len(loader.dataset)
    assert num_images == 5 * 2 + (3 + 4 + 3 + 4 + 3)
    # the given pipeline (scale 2), each image once, in dataset order
    assert torch.equal(loader.dataset.feats[:, 0] / 2.,
                       torch.arange(num_images, dtype=torch.float))
    assert max(runner.model.extract_sizes) == 7


def test_paired_batch_sampler():
    sampler = PairedCacheBatchSampler([4, 0, 2, 1, 3],
                                      num_pairs=5,
                                      batch_size=2)
    assert list(sampler) == [[4, 0, 9, 5], [2, 1, 7, 6], [3, 8]]
    assert len(sampler) == 3
    sampler = PairedCacheBatchSampler([4, 0, 2, 1, 3],
                                      num_pairs=5,
                                      batch_size=2,
                                      drop_last=True)
    assert list(sampler) == [[4, 0, 9, 5], [2, 1, 7, 6]]
    assert len(sampler) == 2
    with pytest.raises(ValueError, match='batch_size must be >= 1, got 0'):
        PairedCacheBatchSampler([0], num_pairs=1, batch_size=0)


@pytest.mark.parametrize('cache,error,msg', [
    (dict(mode='pairs'), ValueError,
     r"feature_cache.mode must be one of \('shuffled', 'paired', "
     r"'sampled'\), got 'pairs'"),
    (dict(mode='paired', extract_batch_size=8), ValueError,
     r'feature_cache.extract_batch_size does not apply to '
     r"mode='paired'"),
    (dict(mode='paired', modalities=['vis']), ValueError,
     r"feature_cache.modalities does not apply to mode='paired'"),
    (dict(mode='sampled', extract_batch_size=8), ValueError,
     r"feature_cache.extract_batch_size does not apply to mode='sampled'"),
    (dict(mode='paired', batch_size=0), ValueError,
     'feature_cache.batch_size must be a positive int, got 0'),
    (dict(modalities=['vis', 'nir']), ValueError,
     r"each of feature_cache.modalities must be one of \['vis', 'ir'\], "
     r"got 'nir'"),
    (dict(mode='paired', pairs=True), KeyError,
     r'stage "prompt": unknown feature_cache keys \[\W*pairs\W*\]; known '
     r'keys are'),
])
def test_cache_config_errors(cache, error, msg):
    """build_feature_cache checks its settings itself (the benchmark calls
    it directly); the loop checks them for every stage at construction
    (tests/test_engine/test_multi_stage_loop.py)."""
    runner = make_runner([dict(name='finetune', epochs=1)])
    with pytest.raises(error, match=msg):
        build_feature_cache(runner.model, cache,
                            runner.cfg.train_dataloader.dataset,
                            runner.image_loader.sampler, stage='prompt')


def test_paired_cache_needs_the_identity_sampler_and_a_pipeline():
    runner = make_runner([
        dict(
            name='prompt',
            epochs=1,
            validate=False,
            feature_cache=dict(mode='paired')),
        dict(name='finetune', epochs=1),
    ])
    loop = runner.train_loop
    loop.dataloader = DataLoader(
        loop.dataloader.dataset, batch_size=4, collate_fn=pseudo_collate)
    with pytest.raises(
            TypeError,
            match="extracts the draw of the image "
            "loader's CrossModalIdentitySampler, but "
            'train_dataloader.sampler is a SequentialSampler'):
        enter(runner, 0)

    runner = make_runner([
        dict(
            name='prompt',
            epochs=1,
            validate=False,
            feature_cache=dict(mode='paired')),
        dict(name='finetune', epochs=1),
    ])
    runner.cfg.val_dataloader = None
    with pytest.raises(KeyError, match='feature_cache needs "pipeline"'):
        enter(runner, 0)


def test_ddp_shards_gather_into_the_single_process_cache(monkeypatch):
    """Two ranks (P identities each, drawn as CrossModalIdentitySampler
    shards one stream) gather the cache that one process with 2P identities
    per step extracts: the same pairs in the same order."""
    from mmvireid.datasets.feature_cache import builder as module
    stages = [
        dict(
            name='prompt',
            epochs=1,
            validate=False,
            feature_cache=dict(mode='paired')),
        dict(name='finetune', epochs=1),
    ]
    cache_cfg = stages[0]['feature_cache']

    def extract(runner):
        cache = build_feature_cache(
            runner.model,
            cache_cfg,
            runner.cfg.val_dataloader.dataset,
            runner.image_loader.sampler,
            epoch=0,
            seed=runner.seed).dataset
        return cache.feats, cache.labels, cache.modalities

    single = extract(make_runner(stages, num_ids=2 * P))
    parts = {}
    for rank in (1, 0):
        # all_gather_object as torch.distributed would return it on `rank`
        monkeypatch.setattr(
            module,
            'all_gather_object',
            lambda obj, rank=rank:
            (parts.__setitem__(rank, obj) or
             [parts.get(0, obj), parts.get(1, obj)]))
        gathered = extract(make_runner(stages, num_replicas=2, rank=rank))
    for got, expected in zip(gathered, single):
        assert torch.equal(got, expected)
    # the ranks' identities are disjoint within each step
    vis_r0, vis_r1 = parts[0][2][0], parts[1][2][0]
    assert not set(vis_r0.tolist()) & set(vis_r1.tolist())
