# Copyright (c) mmvireid contributors. All rights reserved.
"""Tests of CrossModalIdentitySampler: batch layout, equality with the
reference's global-RNG draws, DDP sharding, epochs and errors."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmvireid.datasets.samplers import CrossModalIdentitySampler
from mmvireid.registry import DATA_SAMPLERS


class ToyDataset:
    """Mixed visible/infrared samples with labels, in a scrambled order."""

    def __init__(self, labels, modalities):
        self.labels = np.asarray(labels)
        self.modalities = np.asarray(modalities)

    def __len__(self):
        return len(self.labels)

    def get_labels(self):
        return self.labels

    def get_modalities(self):
        return self.modalities

    def __getitem__(self, idx):
        return idx


class InfoOnlyDataset:
    """Only ``get_data_info`` (the mmengine BaseDataset interface)."""

    def __init__(self, labels, modalities):
        self.infos = [
            dict(gt_label=int(y), modality=m, img_path=f'{i}.jpg')
            for i, (y, m) in enumerate(zip(labels, modalities))
        ]
        self.full_init_calls = 0

    def full_init(self):
        self.full_init_calls += 1

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, idx):
        return dict(self.infos[idx])


def make_toy(num_ids=10, seed=0):
    """Each id has 2..6 visible and 1..5 infrared images, shuffled."""
    rng = np.random.RandomState(seed)
    labels, modalities = [], []
    for pid in range(num_ids):
        n_vis, n_ir = rng.randint(2, 7), rng.randint(1, 6)
        labels += [pid] * (n_vis + n_ir)
        modalities += ['vis'] * n_vis + ['ir'] * n_ir
    order = rng.permutation(len(labels))
    return np.asarray(labels)[order], np.asarray(modalities)[order]


def reference_draw(color_label, thermal_label, num_ids, num_pos, seed):
    """The AGW/CSDN ``GenIdx`` + ``IdentitySampler`` draws, in our words:
    numpy's global RNG, position lists indexed by label value."""
    color_pos = [[k for k, v in enumerate(color_label) if v == label]
                 for label in np.unique(color_label)]
    thermal_pos = [[k for k, v in enumerate(thermal_label) if v == label]
                   for label in np.unique(thermal_label)]
    np.random.seed(seed)
    uni = np.unique(color_label)
    n = max(len(color_label), len(thermal_label))
    index1, index2 = [], []
    for _ in range(int(n / (num_ids * num_pos)) + 1):
        chosen = np.random.choice(uni, num_ids, replace=False)
        for i in range(num_ids):
            index1.extend(np.random.choice(color_pos[chosen[i]], num_pos))
            index2.extend(np.random.choice(thermal_pos[chosen[i]], num_pos))
    return np.asarray(index1), np.asarray(index2)


def split_batches(indices, p, k):
    """Per batch: (visible half, infrared half) of dataset indices."""
    indices = np.asarray(indices)
    size = 2 * p * k
    assert len(indices) % size == 0
    return [(b[:p * k], b[p * k:]) for b in indices.reshape(-1, size)]


def test_aligned_layout_and_length():
    labels, mods = make_toy()
    p, k = 3, 2
    sampler = CrossModalIdentitySampler(
        ToyDataset(labels, mods), num_ids=p, num_instances=k, seed=1)
    indices = list(sampler)
    # N = max(#vis, #ir); floor(N / (P K)) + 1 steps of 2 P K indices.
    n = max((mods == 'vis').sum(), (mods == 'ir').sum())
    steps = n // (p * k) + 1
    assert len(sampler) == len(indices) == 2 * p * k * steps
    for vis, ir in split_batches(indices, p, k):
        assert (mods[vis] == 'vis').all() and (mods[ir] == 'ir').all()
        # position j of both halves has the same identity
        np.testing.assert_array_equal(labels[vis], labels[ir])
        # K consecutive indices per identity, P distinct identities
        per_id = labels[vis].reshape(p, k)
        assert (per_id == per_id[:, :1]).all()
        assert len(set(per_id[:, 0])) == p


def test_equals_reference_global_rng_draws():
    labels, mods = make_toy(num_ids=12, seed=3)
    vis_idx = np.flatnonzero(mods == 'vis')
    ir_idx = np.flatnonzero(mods == 'ir')
    p, k = 4, 3
    for seed in (0, 7):
        sampler = CrossModalIdentitySampler(
            ToyDataset(labels, mods), num_ids=p, num_instances=k, seed=seed)
        ref_vis, ref_ir = reference_draw(labels[vis_idx], labels[ir_idx], p, k,
                                         seed)
        batches = split_batches(list(sampler), p, k)
        ours_vis = np.concatenate([v for v, _ in batches])
        ours_ir = np.concatenate([i for _, i in batches])
        # dataset index -> position within its modality
        np.testing.assert_array_equal(
            np.searchsorted(vis_idx, ours_vis), ref_vis)
        np.testing.assert_array_equal(np.searchsorted(ir_idx, ours_ir), ref_ir)
        # the reference's len() is N, one batch fewer than it runs
        assert len(sampler) == 2 * len(ref_vis)
    # set_epoch(e) is the reference seeded with seed + e
    sampler.set_epoch(5)
    ref_vis, _ = reference_draw(labels[vis_idx], labels[ir_idx], p, k, 7 + 5)
    ours_vis = np.concatenate(
        [v for v, _ in split_batches(list(sampler), p, k)])
    np.testing.assert_array_equal(np.searchsorted(vis_idx, ours_vis), ref_vis)


def test_data_info_fallback_gives_same_draws():
    labels, mods = make_toy(seed=4)
    info_ds = InfoOnlyDataset(labels, mods)
    a = CrossModalIdentitySampler(info_ds, num_ids=2, num_instances=2, seed=3)
    b = CrossModalIdentitySampler(
        ToyDataset(labels, mods), num_ids=2, num_instances=2, seed=3)
    assert info_ds.full_init_calls == 1
    assert list(a) == list(b)


def test_ddp_shards_are_disjoint_and_share_one_stream():
    labels, mods = make_toy(num_ids=12, seed=5)
    ds = ToyDataset(labels, mods)
    p, k, world = 2, 2, 3
    samplers = [
        CrossModalIdentitySampler(
            ds,
            num_ids=p,
            num_instances=k,
            seed=11,
            num_replicas=world,
            rank=r) for r in range(world)
    ]
    n = max((mods == 'vis').sum(), (mods == 'ir').sum())
    steps = n // (p * k * world) + 1
    per_rank = [split_batches(list(s), p, k) for s in samplers]
    assert all(len(s) == 2 * p * k * steps for s in samplers)
    assert all(len(b) == steps for b in per_rank)

    # Reference-style draw for all ranks: w P ids per step in one call, then
    # K visible and K infrared draws per id, for every rank in rank order.
    vis_pos = {
        y: np.flatnonzero((labels == y) & (mods == 'vis'))
        for y in range(12)
    }
    ir_pos = {
        y: np.flatnonzero((labels == y) & (mods == 'ir'))
        for y in range(12)
    }
    rng = np.random.RandomState(11)
    for step in range(steps):
        ids = rng.choice(np.arange(12), world * p, replace=False)
        expected = [(np.concatenate(
            [rng.choice(vis_pos[y], k),
             rng.choice(ir_pos[y], k)]) for y in ids[r * p:(r + 1) * p])
                    for r in range(world)]
        seen = set()
        for r in range(world):
            vis, ir = per_rank[r][step]
            np.testing.assert_array_equal(labels[vis], labels[ir])
            rank_ids = set(labels[vis].tolist())
            assert rank_ids == set(ids[r * p:(r + 1) * p].tolist())
            assert not rank_ids & seen  # disjoint across ranks
            seen |= rank_ids
            draws = list(expected[r])
            np.testing.assert_array_equal(
                vis, np.concatenate([d[:k] for d in draws]))
            np.testing.assert_array_equal(
                ir, np.concatenate([d[k:] for d in draws]))


def test_determinism_epochs_and_shuffle():
    labels, mods = make_toy(seed=6)
    ds = ToyDataset(labels, mods)
    a = CrossModalIdentitySampler(ds, num_ids=3, num_instances=2, seed=42)
    b = CrossModalIdentitySampler(ds, num_ids=3, num_instances=2, seed=42)
    first = list(a)
    assert first == list(a) == list(b)  # same seed and epoch
    a.set_epoch(1)
    second = list(a)
    assert second != first and len(second) == len(first)
    b.set_epoch(1)
    assert list(b) == second
    fixed = CrossModalIdentitySampler(
        ds, num_ids=3, num_instances=2, seed=42, shuffle=False)
    fixed.set_epoch(3)
    assert list(fixed) == first  # shuffle=False ignores the epoch


def test_round_up_false_and_seed_none(monkeypatch):
    labels, mods = make_toy(seed=7)
    ds = ToyDataset(labels, mods)
    n = max((mods == 'vis').sum(), (mods == 'ir').sum())
    s = CrossModalIdentitySampler(
        ds, num_ids=2, num_instances=2, seed=0, round_up=False)
    assert len(s) == len(list(s)) == 2 * 4 * (n // 4)
    # seed=None takes mmengine's synced random seed
    import mmvireid.datasets.samplers.cross_modal_identity_sampler as mod
    monkeypatch.setattr(mod, 'sync_random_seed', lambda: 1234)
    assert CrossModalIdentitySampler(ds, num_ids=2).seed == 1234


def test_built_from_registry_and_dataloader():
    labels, mods = make_toy(seed=8)
    ds = ToyDataset(labels, mods)
    sampler = DATA_SAMPLERS.build(
        dict(type='CrossModalIdentitySampler', num_ids=2, num_instances=3),
        default_args=dict(dataset=ds, seed=9))
    assert isinstance(sampler, CrossModalIdentitySampler)
    loader = DataLoader(ds, batch_size=12, sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(sampler) // 12
    for batch in batches:
        batch = batch.numpy()
        np.testing.assert_array_equal(labels[batch[:6]], labels[batch[6:]])
        assert (mods[batch[:6]] == 'vis').all()
    assert torch.cat(batches).tolist() == list(sampler)
    assert 'num_ids=2' in repr(sampler) and 'steps=' in repr(sampler)


def test_errors():
    labels = np.array([0, 0, 1, 1, 2])
    mods = np.array(['vis', 'ir', 'vis', 'ir', 'vis'])
    with pytest.raises(
            ValueError,
            match=r'labels \[2\] have no infrared '
            r'image and labels \[\] have no visible image'):
        CrossModalIdentitySampler(ToyDataset(labels, mods), num_ids=1, seed=0)
    with pytest.raises(
            ValueError,
            match=r'labels must be 0..C-1 without '
            r'gaps; ToyDataset has 2 identities with labels \[5\] '
            'outside 0..1'):
        CrossModalIdentitySampler(
            ToyDataset([0, 0, 5, 5], ['vis', 'ir', 'vis', 'ir']),
            num_ids=1,
            seed=0)
    with pytest.raises(ValueError, match=r"modalities \['rgb'\]"):
        CrossModalIdentitySampler(
            ToyDataset([0, 0], ['rgb', 'ir']), num_ids=1, seed=0)
    ds = ToyDataset([0, 0, 1, 1], ['vis', 'ir', 'vis', 'ir'])
    with pytest.raises(
            ValueError,
            match=r'num_ids x world_size = 2 x 2 = 4 '
            'distinct identities, but the dataset has only 2'):
        CrossModalIdentitySampler(
            ds, num_ids=2, seed=0, num_replicas=2, rank=1)
    with pytest.raises(
            ValueError, match='rank 2 is out of range for world '
            'size 2'):
        CrossModalIdentitySampler(
            ds, num_ids=1, seed=0, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match='num_instances must be a positive'):
        CrossModalIdentitySampler(ds, num_ids=1, num_instances=0, seed=0)
    with pytest.raises(KeyError, match='_NoModality has no field modality'):
        CrossModalIdentitySampler(_NoModality(), num_ids=1, seed=0)
    with pytest.raises(
            TypeError, match='labels of ToyDataset must be '
            'integers'):
        CrossModalIdentitySampler(
            ToyDataset([0.5, 0.5], ['vis', 'ir']), num_ids=1, seed=0)


class _NoModality:

    def __len__(self):
        return 2

    def get_data_info(self, idx):
        return dict(gt_label=0)
