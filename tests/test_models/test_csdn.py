# Copyright (c) mmvireid contributors. All rights reserved.
"""CSDN: the three stages on a tiny CLIP ResNet, each loss of the fine-tuning
combination against an independent implementation written here, which
parameters each stage moves, the second visible view, the test feature, the
kept quirks of the public code and the real SYSU-MM01 config."""
import copy
import os.path as osp
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.structures import DataSample
from toy_utils import TINY_RN, TINY_TEXT

from mmvireid.engine.optimizers import StageOptimWrapperConstructor
from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

register_all_modules()
ROOT = osp.join(osp.dirname(__file__), '..', '..')

TEXT, RN = TINY_TEXT, TINY_RN
H, W = 64, 32
NUM_CLASSES = 3
WEIGHTS = dict(id=1.0, msel=1.0, triplet=0.15, i2t_vis=0.05, i2t_ir=0.10)


def build_csdn(seed=0, **kwargs):
    cfg = dict(
        type='CSDN',
        num_classes=NUM_CLASSES,
        data_preprocessor=dict(
            type='VIReIDDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375]),
        image_encoder=dict(
            type='CLIPImageEncoder',
            arch=RN,
            input_size=(H, W),
            last_stride=1,
            modality_specific_stem=True),
        text_encoder=dict(type='CLIPTextEncoder', arch=RN),
        prompt_learner=dict(type='IDPromptLearner', embed_width=32),
        # P x K = 2 x 2 per modality in the batches below
        msel_loss=dict(type='MSELLoss', num_pos=2))
    cfg.update(kwargs)
    torch.manual_seed(seed)
    # no init_weights(): random init, and the head initialises itself
    return MODELS.build(cfg)


def image_batch(seed=0, labels=(0, 0, 2, 2), second_view=True, size=(H, W)):
    """CrossModalIdentitySampler layout: visible block, then infrared block
    with the same labels position by position; visible samples carry a
    second view (an independent image, as a pipeline's KeyMapper writes)."""
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    for modality, cam in (('vis', 1), ('ir', 3)):
        for i, label in enumerate(labels):
            img = rng.randint(0, 256, size + (3, ), dtype=np.uint8)
            inputs.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
            sample = DataSample().set_gt_label(label)
            sample.set_metainfo(
                dict(modality=modality, cam_id=cam, sample_idx=len(samples)))
            if modality == 'vis' and second_view:
                sample.set_field(
                    rng.randint(0, 256, size + (3, ), dtype=np.uint8),
                    'img_view2')
            samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def feature_batch(seed=0, num_pairs=4, dim=32):
    """A paired feature-cache batch: [B visible; B infrared], aligned."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1, 2, 1])[:num_pairs]
    return dict(
        inputs=torch.randn(2 * num_pairs, dim, generator=g),
        data_samples=dict(
            gt_label=torch.cat([labels, labels]),
            modality=torch.cat([
                torch.zeros(num_pairs, dtype=torch.long),
                torch.ones(num_pairs, dtype=torch.long)
            ])))


def normalise(model, imgs):
    """Stacked uint8 BGR CHW images -> the preprocessor's RGB normalised
    float batch, written out: (x[::-1] - mean) / std."""
    pre = model.data_preprocessor
    x = torch.stack(imgs).float()[:, [2, 1, 0]]
    return (x - pre.mean) / pre.std


# ---------------------------------------------------------------------- #
# independent loss implementations (per row, as the reference code reads)
# ---------------------------------------------------------------------- #
def ref_supcon(a, b, la, lb):
    rows = []
    for i in range(len(a)):
        logits = torch.stack([a[i] @ b[j] for j in range(len(b))])
        log_prob = logits - torch.logsumexp(logits, 0)
        pos = [j for j in range(len(b)) if lb[j] == la[i]]
        rows.append(-torch.stack([log_prob[j] for j in pos]).mean())
    return torch.stack(rows).mean()


def ref_dist(x):
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp(min=1e-12).sqrt()


def ref_wrt(x, y):
    d = ref_dist(x.double())
    losses = []
    for i in range(len(x)):
        pos = (y == y[i]).double()
        neg = 1 - pos
        # positives: softmax of d over same-label entries
        sp = torch.exp(d[i] * pos - (d[i] * pos).max()) * pos
        wp = sp / (sp.sum() + 1e-6)
        # negatives: softmax of -d, shifted by the whole-row max (= 0)
        s = -d[i] * neg
        sn = torch.exp(s - (s * neg).max()) * neg
        wn = sn / (sn.sum() + 1e-6)
        gap = (wn * d[i] * neg).sum() - (wp * d[i] * pos).sum()
        losses.append(torch.log1p(torch.exp(-gap)))
    return torch.stack(losses).mean()


def ref_msel(x, y, k):
    n = len(x) // 2
    d = ref_dist(x.double())
    target = y[:n]
    terms = []
    for block in (0, 1):
        rows = []
        for i in range(n):
            same = [j for j in range(n) if target[j] == target[i]]
            a = block * n + i
            intra = sorted((d[a, block * n + j] for j in same),
                           reverse=True)[:k - 1]
            cross = [d[a, (1 - block) * n + j] for j in same]
            rows.append(
                (torch.stack(cross).mean() - torch.stack(intra).mean())**2)
        terms.append(torch.stack(rows).mean())
    return (terms[0] + terms[1]) / 2


def assert_close(a, b, tol=1e-5):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert torch.allclose(a, b, rtol=tol, atol=tol), (float(a), float(b))


# ---------------------------------------------------------------------- #
# structure
# ---------------------------------------------------------------------- #
def test_structure_matches_csdn():
    model = build_csdn()
    assert model.STAGES == ('prompt', 'fusion', 'finetune')
    for name in ('prompt_learner_vis', 'prompt_learner_ir', 'fusion', 'head',
                 'image_encoder', 'text_encoder'):
        assert isinstance(getattr(model, name), nn.Module), name
    assert not hasattr(model, 'prompt_learner')
    assert model.prompt_learner_vis.template == \
        model.prompt_learner_ir.template == 'A photo of a X X X X person.'
    assert model.prompt_learner_vis.cls_ctx.shape == (NUM_CLASSES, 4, 32)
    # the two learners are initialised independently
    assert not torch.equal(model.prompt_learner_vis.cls_ctx,
                           model.prompt_learner_ir.cls_ctx)
    assert model.fusion.embed_dim == 32  # the text encoder's output
    # Classifier: GeM p=3, BN with trainable bias, linear without bias;
    # Classifier2: the same BN/linear on the projection
    assert model.head.pool.p.item() == 3.0
    for bn, fc in zip(model.head.bns, model.head.classifiers):
        assert bn.bias.requires_grad and fc.bias is None
    # --lambda1/2/3 are the loss_weight of the loss modules; one i2t loss
    # per modality replaces the base's
    weights = {k: getattr(model, f'{k}_loss').loss_weight for k in WEIGHTS}
    assert weights == WEIGHTS
    assert model.i2t_loss is None
    assert (model.test_feature, model.flip_test) == ('bn_l2', True)
    assert model.id_loss.epsilon == 0.0
    assert type(model.triplet_loss).__name__ == 'WRTTripletLoss'


def test_stems_apply_only_the_last_relu():
    model = build_csdn().eval()
    enc = model.image_encoder
    x = torch.randn(2, 3, H, W)
    for stem, modality in ((enc.visual, 0), (enc.ir_stem, 1)):
        # CSDN: Sequential(conv1, bn1, conv2, bn2, conv3, bn3, relu, avgpool)
        expected = stem.avgpool(
            F.relu(
                stem.bn3(
                    stem.conv3(stem.bn2(stem.conv2(stem.bn1(
                        stem.conv1(x))))))))
        out = enc.forward_stem(x, torch.full((2, ), modality))
        assert torch.allclose(out, expected, atol=1e-6)
    # the switch restores CLIP's three ReLUs
    clip_stems = build_csdn(stem_inner_relu=True).image_encoder
    assert isinstance(clip_stems.visual.act1, nn.ReLU)
    assert isinstance(clip_stems.ir_stem.act2, nn.ReLU)
    assert isinstance(enc.visual.act1, nn.Identity)
    assert isinstance(enc.ir_stem.act2, nn.Identity)


# ---------------------------------------------------------------------- #
# stage 1 and 2 losses
# ---------------------------------------------------------------------- #
def test_prompt_loss_pairs_each_feature_with_its_modality_learner():
    model = build_csdn()
    model.switch_stage('prompt')
    batch = feature_batch()
    feats, labels = batch['inputs'], batch['data_samples']['gt_label']
    losses = model(feats, batch['data_samples'], mode='loss')
    # CSDN: cat(PL1(rgb labels), PL2(ir labels)) against cat(rgb, ir)
    text = torch.cat([
        model.prompt_learner_vis(labels[:4], model.text_encoder),
        model.prompt_learner_ir(labels[4:], model.text_encoder)
    ])
    assert_close(losses['loss_supcon_i2t'],
                 ref_supcon(feats, text, labels, labels))
    assert_close(losses['loss_supcon_t2i'],
                 ref_supcon(text, feats, labels, labels))
    # a shuffled batch picks each row's learner by its modality
    perm = torch.tensor([5, 0, 7, 2, 1, 6, 3, 4])
    shuffled = dict(
        gt_label=labels[perm],
        modality=batch['data_samples']['modality'][perm])
    text_shuffled = model.modality_text_features(shuffled['gt_label'],
                                                 shuffled['modality'])
    assert torch.allclose(text_shuffled, text[perm], atol=1e-6)


def test_fusion_loss_and_gradients_reach_the_fusion_only():
    model = build_csdn()
    model.switch_stage('fusion')
    model.fusion.eval()  # deterministic dropout for the comparison
    batch = feature_batch(seed=3)
    feats, labels = batch['inputs'], batch['data_samples']['gt_label']
    losses = model(feats, batch['data_samples'], mode='loss')
    with torch.no_grad():
        fused = model.fusion(
            model.prompt_learner_vis(labels, model.text_encoder),
            model.prompt_learner_ir(labels, model.text_encoder))
    assert_close(losses['loss_supcon_i2t'],
                 ref_supcon(feats, fused, labels, labels))
    assert_close(losses['loss_supcon_t2i'],
                 ref_supcon(fused, feats, labels, labels))
    sum(losses.values()).backward()
    assert model.prompt_learner_vis.cls_ctx.grad is None
    assert model.prompt_learner_ir.cls_ctx.grad is None
    assert torch.count_nonzero(model.fusion.embedding_v[0].weight.grad) > 0
    assert torch.count_nonzero(model.fusion.embedding_q[0].weight.grad) == 0


# ---------------------------------------------------------------------- #
# stage 3
# ---------------------------------------------------------------------- #
def test_finetune_losses_match_independent_computation():
    model = build_csdn(class_text_dropout=False)
    model.switch_stage('finetune')
    data = model.data_preprocessor(image_batch(), True)
    losses = model(data['inputs'], data['data_samples'], mode='loss')

    # the batch CSDN forms: [rgb view 1; ir; rgb view 2]
    samples = data['data_samples']
    view2 = normalise(model, [
        torch.from_numpy(s.img_view2.transpose(2, 0, 1).copy())
        for s in samples[:4]
    ])
    x = torch.cat([data['inputs'], view2])
    y = torch.tensor([0, 0, 2, 2] * 3)
    modality = torch.tensor([0] * 4 + [1] * 4 + [0] * 4)
    feat, proj = model.image_encoder(x, modality=modality)
    out = model.head([feat, proj])
    f, v = out['feats']
    T = model.class_text_feats
    vis, ir = slice(0, 4), slice(4, 8)
    ref = dict(
        loss_id=F.cross_entropy(out['logits'][0], y),
        loss_id_proj=F.cross_entropy(out['logits'][1], y),
        loss_triplet=0.15 * ref_wrt(f, y),
        loss_triplet_proj=0.15 * ref_wrt(v, y),
        loss_i2t_vis=0.05 * F.cross_entropy(v[vis] @ T.t(), y[vis]),
        loss_i2t_ir=0.10 * F.cross_entropy(v[ir] @ T.t(), y[ir]),
        loss_msel=ref_msel(f[:8], y[:8], 2),
        loss_msel_proj=ref_msel(v[:8], y[:8], 2))
    assert set(losses) == set(ref) | {'acc'}
    for key, value in ref.items():
        assert_close(losses[key], value, tol=2e-5)
    # total = ID + ID_proj + MSEL + MSEL_proj + 0.15 (Tri + Tri_proj)
    #         + 0.05 i2t_vis + 0.10 i2t_ir
    total, _ = model.parse_losses(losses)
    assert_close(total, sum(ref.values()), tol=2e-5)
    assert 0 <= float(losses['acc']) <= 1


def test_second_views_join_the_batch():
    model = build_csdn(class_text_dropout=False)
    model.switch_stage('finetune')
    seen = {}
    forward = model.image_encoder.forward

    def spy(x, modality=None, cam_ids=None):
        seen.update(x=x, modality=modality, cam_ids=cam_ids)
        return forward(x, modality=modality, cam_ids=cam_ids)

    model.image_encoder.forward = spy
    batch = image_batch(seed=5)
    data = model.data_preprocessor(batch, True)
    model(data['inputs'], data['data_samples'], mode='loss')
    assert seen['x'].shape == (12, 3, H, W)
    assert seen['modality'].tolist() == [0] * 4 + [1] * 4 + [0] * 4
    assert seen['cam_ids'].tolist() == [1] * 4 + [3] * 4 + [1] * 4
    view2 = normalise(model, [
        torch.from_numpy(s.img_view2.transpose(2, 0, 1).copy())
        for s in batch['data_samples'][:4]
    ])
    assert torch.allclose(seen['x'][8:], view2, atol=1e-5)
    assert torch.equal(seen['x'][:8], data['inputs'])

    # without second views the batch is the first views only
    data = model.data_preprocessor(image_batch(second_view=False), True)
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    assert seen['x'].shape == (8, 3, H, W)
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))


def test_finetune_needs_both_modalities_and_the_text_features():
    model = build_csdn(class_text_dropout=False)
    data = model.data_preprocessor(image_batch(), True)
    model.current_stage = 'finetune'  # entered without switch_stage
    with pytest.raises(
            RuntimeError, match='fused class text features are '
            'missing'):
        model(data['inputs'], data['data_samples'], mode='loss')
    model.current_stage = None
    model.switch_stage('finetune')
    only_vis = dict(
        inputs=data['inputs'][:4], data_samples=data['data_samples'][:4])
    with pytest.raises(
            ValueError,
            match='needs visible and infrared images '
            'in every batch, got 4 visible and 0 infrared'):
        model(only_vis['inputs'], only_vis['data_samples'], mode='loss')


def test_release_2024_07_has_no_msel_and_no_flip():
    model = build_csdn(
        msel_loss=None, flip_test=False, class_text_dropout=False)
    model.switch_stage('finetune')
    data = model.data_preprocessor(image_batch(), True)
    losses = model(data['inputs'], data['data_samples'], mode='loss')
    assert not any('msel' in k for k in losses)
    model.eval()
    feats = model.extract_feat(data['inputs'], data['data_samples'])
    assert feats.shape == (8, 256 + 32)


# ---------------------------------------------------------------------- #
# one step of each stage: only the intended parameters move
# ---------------------------------------------------------------------- #
def build_optim_wrappers(cfg, model):
    """The per-stage optim wrappers of a config, as the runner builds
    them (it pops ``constructor`` first)."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict())
    assert optim_cfg.pop('constructor') == 'StageOptimWrapperConstructor'
    return StageOptimWrapperConstructor(optim_cfg)(model)


def _optim_wrappers(model):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/schedules/csdn_3stage.py'))
    return build_optim_wrappers(cfg, model)


def _changed(model, before):
    return {
        name
        for name, p in model.named_parameters()
        if not torch.equal(p.detach(), before[name])
    }


def test_one_step_per_stage_moves_only_its_parameters():
    model = build_csdn()
    wrappers = _optim_wrappers(model)
    assert wrappers['finetune'].param_groups[0]['lr'] == 3e-4
    head_lrs = {
        g['lr']
        for g in wrappers['finetune'].param_groups
        if any(p is model.head.pool.p for p in g['params'])
    }
    assert head_lrs == {6e-4}  # classifiers (GeM, BNs, linears) x2
    params = dict(model.named_parameters())

    def step(stage, data):
        model.switch_stage(stage)
        model.train()
        before = {k: p.detach().clone() for k, p in params.items()}
        log = model.train_step(data, wrappers)
        assert torch.isfinite(log['loss'])
        return _changed(model, before)

    changed = step('prompt', feature_batch())
    assert changed == {
        'prompt_learner_vis.cls_ctx', 'prompt_learner_ir.cls_ctx'
    }

    changed = step('fusion', feature_batch(seed=1))
    # q and k have zero gradients, but Adam's L2 weight decay moves them as
    # it does in the reference
    assert changed == {k for k in params if k.startswith('fusion.')}
    assert len(changed) == 8

    text_before = model.class_text_feats.clone()
    changed = step('finetune', image_batch())
    allowed = {
        k
        for k, p in params.items()
        if k.startswith(('image_encoder.', 'head.')) and p.requires_grad
    }
    assert changed <= allowed
    # open_clip zero-initialises every block's bn3.weight, so at random
    # init the bn1/bn2 biases of the residual branches get zero gradients
    # and, being 0, no weight decay: Adam leaves exactly these in place
    assert allowed - changed == {
        f'image_encoder.visual.layer{i}.0.bn{j}.bias'
        for i in range(1, 5)
        for j in (1, 2)
    }
    assert any(k.startswith('image_encoder.ir_stem.') for k in changed)
    assert 'image_encoder.visual.conv1.weight' in changed
    assert 'head.pool.p' in changed
    assert not torch.equal(model.class_text_feats, text_before)  # T made
    assert bool(model.class_text_ready)


# ---------------------------------------------------------------------- #
# test feature, cache features, T
# ---------------------------------------------------------------------- #
def test_test_feature_with_flip_and_infrared_stem():
    model = build_csdn().eval()
    batch = image_batch(second_view=False)
    data = model.data_preprocessor(batch, False)
    x, samples = data['inputs'], data['data_samples']
    feats = model.extract_feat(x, samples)
    assert feats.shape == (8, 2 * (256 + 32))

    def single(inputs, modality):
        f, p = model.image_encoder(inputs, modality=modality)
        out = model.head([f, p])
        return torch.cat([
            F.normalize(out['bn_feats'][0], dim=1),
            F.normalize(out['feats'][1], dim=1)
        ], 1)

    modality = torch.tensor([0] * 4 + [1] * 4)
    expected = torch.cat([single(x, modality), single(x.flip(3), modality)], 1)
    assert torch.allclose(feats, expected, atol=1e-5)
    # infrared queries use stem 2: changing it moves only infrared features
    with torch.no_grad():
        model.image_encoder.ir_stem.conv1.weight.mul_(1.5)
    moved = model.extract_feat(x, samples)
    assert torch.allclose(moved[:4], feats[:4], atol=1e-6)
    assert not torch.allclose(moved[4:], feats[4:], atol=1e-3)
    # predict(): the whole vector L2-normalised (constant norm 2, so the
    # ranking equals the reference's raw dot products)
    assert torch.allclose(feats.norm(dim=1), torch.full((8, ), 2.), atol=1e-5)


def test_cache_features_use_batch_statistics_in_the_fusion_stage():
    model = build_csdn()
    enc = model.image_encoder
    data = image_batch(second_view=False)
    model.eval()
    x = model.data_preprocessor(data, False)['inputs']
    modality = torch.tensor([0] * 4 + [1] * 4)
    buffers = {k: v.clone() for k, v in enc.named_buffers()}

    model.switch_stage('prompt')
    with torch.no_grad():
        eval_feats = enc(x, modality=modality)[1]
    assert torch.allclose(
        model.extract_cache_features(data), eval_feats, atol=1e-5)

    model.switch_stage('fusion')
    cached = model.extract_cache_features(data)
    # reference: each modality alone through an encoder in train mode
    ref_enc = copy.deepcopy(enc).train()
    with torch.no_grad():
        ref = torch.cat([
            ref_enc(x[:4], modality=modality[:4])[1],
            ref_enc(x[4:], modality=modality[4:])[1]
        ])
    assert torch.allclose(cached, ref, atol=1e-5)
    assert not torch.allclose(cached, eval_feats, atol=1e-3)
    # mode and BatchNorm statistics restored
    assert not enc.training
    for k, v in enc.named_buffers():
        assert torch.equal(v, buffers[k]), k

    with pytest.raises(
            ValueError,
            match='train_mode_cache_stages names '
            r"unknown stages \['stage2'\]"):
        build_csdn(train_mode_cache_stages=['stage2'])


def test_class_text_features_dropout_and_checkpoint():
    model = build_csdn(fusion=dict(type='SIIFusion', dropout=0.5))
    model.eval()
    with torch.no_grad():
        eval_text = model.fusion(
            model.prompt_learner_vis(torch.arange(3), model.text_encoder),
            model.prompt_learner_ir(torch.arange(3), model.text_encoder))
    torch.manual_seed(11)
    model.switch_stage('finetune')
    assert not model.fusion.training  # mode restored
    T = model.class_text_feats.clone()
    assert T.shape == (NUM_CLASSES, 32)
    assert not torch.allclose(T, eval_text, atol=1e-4)  # dropout was on

    # T is saved; a model restored from it keeps it when it enters the
    # finetune stage (a resumed run does not redraw the dropout)
    state = model.state_dict()
    assert 'class_text_feats' in state and bool(state['class_text_ready'])
    restored = build_csdn(fusion=dict(type='SIIFusion', dropout=0.5))
    restored.load_state_dict(state)
    torch.manual_seed(12)
    restored.switch_stage('finetune')
    assert torch.equal(restored.class_text_feats, T)
    # a new prompt/fusion stage invalidates it
    restored.switch_stage('fusion')
    assert not bool(restored.class_text_ready)

    no_dropout = build_csdn(
        fusion=dict(type='SIIFusion', dropout=0.5), class_text_dropout=False)
    no_dropout.train()
    no_dropout.switch_stage('finetune')
    assert torch.allclose(no_dropout.class_text_feats, eval_text, atol=1e-5)
    assert no_dropout.fusion.training


def test_removed_loss_weights_names_the_loss_configs_to_set():
    with pytest.raises(TypeError) as err:
        build_csdn(loss_weights=dict(triplet=0.3, i2t_ir=0.2))
    msg = str(err.value)
    assert msg.startswith('CSDN: `loss_weights` is no longer accepted')
    assert ('write triplet_loss=dict(..., loss_weight=0.3), '
            'i2t_ir_loss=dict(..., loss_weight=0.2) in the model config'
            in msg)
    assert ('--cfg-options model.triplet_loss.loss_weight=0.3 '
            'model.i2t_ir_loss.loss_weight=0.2') in msg
    # one i2t term per modality: the base's single i2t_loss is refused
    with pytest.raises(
            TypeError,
            match='set i2t_vis_loss and i2t_ir_loss instead of i2t_loss'):
        build_csdn(i2t_loss=dict(type='ImageTextCELoss'))


def test_loss_weight_of_a_loss_config_weighs_its_terms():
    """The replacement the error names: the term scales with the
    loss_weight of its config, and nothing else changes."""
    data = image_batch()
    losses = {}
    for weight in (0.15, 0.6):
        model = build_csdn(
            triplet_loss=dict(type='WRTTripletLoss', loss_weight=weight),
            i2t_ir_loss=dict(type='ImageTextCELoss', loss_weight=weight))
        model.train()
        model.switch_stage('finetune')
        batch = model.data_preprocessor(copy.deepcopy(data), True)
        losses[weight] = model(**batch, mode='loss')
    low, high = losses[0.15], losses[0.6]
    for key in ('loss_triplet', 'loss_triplet_proj', 'loss_i2t_ir'):
        torch.testing.assert_close(high[key], 4 * low[key])
    for key in ('loss_id', 'loss_id_proj', 'loss_i2t_vis', 'loss_msel'):
        assert torch.equal(high[key], low[key]), key


# ---------------------------------------------------------------------- #
# the real recipe
# ---------------------------------------------------------------------- #
def test_sysu_config_model_trains_one_step():
    """configs/csdn_sysu.py's model (RN50 at 288x144, random init), one
    fine-tuning step on 2 identities x 2 images per modality (+ 2nd views);
    num_classes=2 keeps the text bank of T small. About 20 s on two idle
    CPU cores, most of it building the two RN50 CLIP towers."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/csdn_sysu.py'))
    cfg.model.image_encoder.pretrained = None
    cfg.model.text_encoder.pretrained = None
    cfg.model.num_classes = 2
    cfg.model.msel_loss.num_pos = 2
    model = MODELS.build(cfg.model)
    assert isinstance(model.image_encoder.visual.act1, nn.Identity)
    wrappers = build_optim_wrappers(cfg, model)
    model.switch_stage('finetune')
    model.train()
    log = model.train_step(
        image_batch(labels=(0, 0, 1, 1), size=(288, 144)), wrappers)
    assert torch.isfinite(log['loss'])
    assert {'loss_msel', 'loss_i2t_ir', 'loss_triplet_proj'} <= set(log)


def test_two_view_train_pipeline_of_the_config():
    """configs/csdn_sysu.py's pipeline: visible samples get an independent
    channel-exchanged second view, infrared samples none."""
    from mmcv.transforms import Compose
    cfg = Config.fromfile(osp.join(ROOT, 'configs/csdn_sysu.py'))
    steps = cfg.train_dataloader.dataset.pipeline
    assert steps[0]['type'] == 'LoadImageFromFile'
    pipeline = Compose(steps[1:])  # from Resize on, on an array
    mean = torch.tensor(cfg.model.data_preprocessor.mean)
    std = torch.tensor(cfg.model.data_preprocessor.std)
    rng = np.random.RandomState(0)
    # a colourful BGR image: its channels differ everywhere
    img = np.stack([
        rng.randint(0, 80, (300, 150)),
        rng.randint(90, 170, (300, 150)),
        rng.randint(180, 256, (300, 150))
    ], -1).astype(np.uint8)

    def sample(modality):
        return dict(
            img=img.copy(),
            modality=modality,
            gt_label=0,
            cam_id=1,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2])

    copied = set()
    for seed in range(6):
        random.seed(seed)
        np.random.seed(seed)
        packed = pipeline(sample('vis'))
        view1 = packed['inputs']
        view2 = packed['data_samples'].img_view2
        assert view1.shape == (3, 288, 144) and view2.shape == (288, 144, 3)
        # view 1 keeps its colours (view 2's transforms did not touch it)
        assert not torch.equal(view1[0], view1[2])
        # view 2: one channel copied into all three *normalised* channels
        rgb = torch.from_numpy(view2[..., ::-1].astype(np.float32).copy())
        norm = (rgb - mean) / std
        inside = torch.from_numpy((view2 > 0).all(-1) & (view2 < 255).all(-1))
        spread = norm.max(-1).values - norm.min(-1).values
        assert spread[inside].max() < 0.05  # uint8 rounding only
        copied.add(round(float(norm[inside].mean()), 1))
    assert len(copied) > 1  # the copied channel is drawn
    assert 'img_view2' not in pipeline(sample('ir'))['data_samples']
