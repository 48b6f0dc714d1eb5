# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIP4VI-ReID: the alignment loss, the IFE neck, what trains in each stage,
and resuming inside the HSA stage."""
import copy
import importlib.util
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from mmvireid.engine.optimizers import StageOptimWrapperConstructor
from mmvireid.models.losses import (CrossModalAlignmentLoss,
                                    cross_modal_alignment_loss,
                                    identity_text_distributions, supcon_loss)
from mmvireid.models.necks import IFENeck
from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

# registers every module and makes 'mmvireid' the default scope, so nested
# configs (data preprocessor, hooks, datasets) resolve here
register_all_modules()
ROOT = osp.join(osp.dirname(__file__), '..', '..')
SCHEDULE = osp.join(ROOT, 'configs', '_base_', 'schedules',
                    'clip4vireid_3stage.py')

# A very small random CLIP: 1-layer ViT on 32x16 images, 1-layer text tower.
ARCH = dict(
    embed_dim=24,
    vision_cfg=dict(
        image_size=(32, 16), patch_size=8, width=32, layers=1, head_width=16),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
NUM_CLASSES = 6


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """These models are tiny: one intra-op thread is faster than two, and
    it does not oversubscribe a busy CI machine (which made steps ~10x
    slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_cfg(num_classes=NUM_CLASSES, **kwargs):
    cfg = dict(
        type='CLIP4VIReID',
        num_classes=num_classes,
        data_preprocessor=dict(type='VIReIDDataPreprocessor'),
        image_encoder=dict(
            type='CLIPImageEncoder',
            arch=ARCH,
            input_size=(32, 16),
            stride_size=8),
        text_encoder=dict(type='CLIPTextEncoder', arch=ARCH),
        prompt_learner=dict(type='IDPromptLearner', embed_width=32),
        head=dict(type='BNNeckHead', pool='avg'),
        ife_neck=dict(type='IFENeck', hidden_channels=8))
    cfg.update(kwargs)
    return cfg


def build_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    # every submodule initialises itself when built (the IFE neck's output
    # layer starts at zero), so no init_weights() call is needed here
    return MODELS.build(model_cfg(**kwargs))


def image_batch(labels, seed=0):
    """A P x K visible block then the same identities' infrared block."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for modality, cam in (('vis', 1), ('ir', 3)):
        for label in labels:
            inputs.append(
                torch.randint(
                    0, 256, (3, 32, 16), generator=gen, dtype=torch.uint8))
            sample = DataSample().set_gt_label(label)
            sample.set_metainfo(dict(modality=modality, cam_id=cam))
            samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def feature_batch(labels, dim=24, modality=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    return dict(
        inputs=torch.randn(len(labels), dim, generator=gen),
        data_samples=dict(
            gt_label=labels, modality=torch.full_like(labels, modality)))


def stage_optim_wrappers(model):
    """The optimisers of the real schedule config, one per stage."""
    cfg = Config.fromfile(SCHEDULE).optim_wrapper.to_dict()
    cfg.pop('constructor')
    return StageOptimWrapperConstructor(cfg)(model)


# --------------------------------------------------------------------------
# the alignment loss
# --------------------------------------------------------------------------
def reference_alignment(img, text, labels, mods, tau, normalize, mode):
    """Per identity: mean of the per-image softmax over the texts for each
    modality, then the KL(s) — written with explicit loops."""
    if normalize:
        img = img / img.norm(dim=1, keepdim=True)
        text = text / text.norm(dim=1, keepdim=True)
    terms = []
    for pid in sorted(set(labels.tolist())):
        dists = {}
        for m in (0, 1):
            rows = [
                torch.softmax(img[i] @ text.t() / tau, dim=0)
                for i in range(len(labels))
                if labels[i] == pid and mods[i] == m
            ]
            if rows:
                dists[m] = sum(rows) / len(rows)
        if len(dists) < 2:
            continue
        kl_vi = sum(dists[0][c] * math.log(dists[0][c] / dists[1][c])
                    for c in range(len(text)))
        kl_iv = sum(dists[1][c] * math.log(dists[1][c] / dists[0][c])
                    for c in range(len(text)))
        terms.append({
            'symmetric': 0.5 * (kl_vi + kl_iv),
            'vis_teacher': kl_vi,
            'ir_teacher': kl_iv
        }[mode])
    return sum(terms) / len(terms)


def test_alignment_zero_for_identical_distributions():
    text = torch.randn(5, 8)
    a, b = torch.randn(8), torch.randn(8)
    # identity 0: visible images {a, b}, infrared {b, a} -> the same mean
    # distribution although no single pair matches; identity 1: equal images
    img = torch.stack([a, b, a, b, b, a, a, b])
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    mods = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for mode in ('symmetric', 'vis_teacher', 'ir_teacher'):
        loss = cross_modal_alignment_loss(img, text, labels, mods, mode=mode)
        assert abs(float(loss)) < 1e-6


def test_alignment_hand_computed_value():
    # T = I (two texts), tau = 1. Visible logits (ln 3, 0) -> (3/4, 1/4);
    # infrared logits (0, 0) -> (1/2, 1/2).
    # KL(vis||ir) = 3/4 ln(3/2) + 1/4 ln(1/2)  = 0.1308120...
    # KL(ir||vis) = 1/2 ln(2/3) + 1/2 ln 2     = 0.1438410...
    text = torch.eye(2, dtype=torch.float64)
    img = torch.tensor([[math.log(3), 0.], [0., 0.]], dtype=torch.float64)
    labels = torch.tensor([7, 7])
    mods = torch.tensor([0, 1])
    kl_vi = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    kl_iv = 0.5 * math.log(2 / 3) + 0.5 * math.log(2)
    assert kl_vi == pytest.approx(0.1308120, abs=1e-7)
    assert kl_iv == pytest.approx(0.1438410, abs=1e-7)
    got = {
        mode:
        float(cross_modal_alignment_loss(img, text, labels, mods, mode=mode))
        for mode in ('symmetric', 'vis_teacher', 'ir_teacher')
    }
    assert got['vis_teacher'] == pytest.approx(kl_vi, abs=1e-12)
    assert got['ir_teacher'] == pytest.approx(kl_iv, abs=1e-12)
    assert got['symmetric'] == pytest.approx(0.1373265, abs=1e-7)
    # temperature 0.5 doubles the logits: (9/10, 1/10) vs (1/2, 1/2)
    loss = cross_modal_alignment_loss(
        img, text, labels, mods, temperature=0.5, mode='vis_teacher')
    assert float(loss) == pytest.approx(
        0.9 * math.log(1.8) + 0.1 * math.log(0.2), abs=1e-12)
    # and the module applies its weight
    module = CrossModalAlignmentLoss(mode='symmetric', loss_weight=2.0)
    assert float(module(img, text, labels, mods)) == pytest.approx(
        2 * got['symmetric'], abs=1e-12)


@pytest.mark.parametrize('mode', ['symmetric', 'vis_teacher', 'ir_teacher'])
@pytest.mark.parametrize('normalize,tau', [(False, 1.0), (True, 0.2)])
def test_alignment_matches_loop_reference(mode, normalize, tau):
    gen = torch.Generator().manual_seed(3)
    img = torch.randn(14, 6, generator=gen, dtype=torch.float64)
    text = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    # identity 5 has visible images only, so it is left out; identity 0 has
    # 3 visible and 4 infrared images
    labels = torch.tensor([0, 0, 0, 2, 2, 2, 5, 0, 0, 0, 2, 2, 2, 0])
    mods = torch.tensor([0] * 7 + [1] * 7)
    loss = cross_modal_alignment_loss(img, text, labels, mods, tau, normalize,
                                      mode)
    expected = reference_alignment(img, text, labels, mods, tau, normalize,
                                   mode)
    assert float(loss) > 0
    assert float(loss) == pytest.approx(float(expected), rel=1e-10)


def test_alignment_distributions_and_teacher_gradient():
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(8, 5, generator=gen, requires_grad=True)
    text = torch.randn(3, 5, generator=gen)
    labels = torch.tensor([4, 4, 1, 1, 4, 4, 1, 1])
    mods = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    log_vis, log_ir, ids = identity_text_distributions(img, text, labels, mods)
    assert ids.tolist() == [1, 4] and log_vis.shape == (2, 3)
    torch.testing.assert_close(log_vis.exp().sum(1), torch.ones(2))
    expected = torch.softmax(img[:2] @ text.t(), 1).mean(0)  # id 4, visible
    torch.testing.assert_close(log_vis[1].exp(), expected)
    # with a visible teacher, only the infrared features get a gradient
    cross_modal_alignment_loss(
        img, text, labels, mods, mode='vis_teacher').backward()
    assert img.grad[:4].abs().max() == 0
    assert img.grad[4:].abs().max() > 0


def test_alignment_errors():
    img, text = torch.randn(4, 3), torch.randn(2, 3)
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match='no identity has images of both'):
        cross_modal_alignment_loss(img, text, labels,
                                   torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r'modalities must be 0 .* \[0, 2\]'):
        cross_modal_alignment_loss(img, text, labels,
                                   torch.tensor([0, 2, 0, 2]))
    with pytest.raises(ValueError, match="mode must be one of .* 'both'"):
        CrossModalAlignmentLoss(mode='both')
    with pytest.raises(ValueError, match=r'\(N, D\) and text features'):
        cross_modal_alignment_loss(img, torch.randn(2, 4), labels,
                                   torch.tensor([0, 1, 0, 1]))


# --------------------------------------------------------------------------
# the IFE neck
# --------------------------------------------------------------------------
def test_ife_neck_starts_as_identity_and_learns():
    neck = MODELS.build(
        dict(
            type='IFENeck',
            in_channels=12,
            init_cfg=dict(type='Normal', layer='Linear', std=1.0)))
    neck.init_weights()  # the init_cfg hits fc2 too; it is re-zeroed
    assert neck.hidden_channels == 3
    x = torch.randn(5, 12)
    torch.testing.assert_close(neck(x), x, rtol=0, atol=0)
    opt = torch.optim.SGD(neck.parameters(), lr=0.1)
    neck(x).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(neck(x), x)
    # without zero init it is a plain residual MLP from the start
    free = IFENeck(
        12,
        hidden_channels=4,
        zero_init_last=False,
        act='gelu',
        pre_norm=False)
    expected = x + free.fc2(F.gelu(free.fc1(x)))
    torch.testing.assert_close(free(x), expected)
    with pytest.raises(
            ValueError, match=r'expects features \[B, 12\], got '
            r'\(5, 7\)'):
        neck(torch.randn(5, 7))
    with pytest.raises(ValueError, match="act must be one of .* 'tanh'"):
        IFENeck(12, act='tanh')


# --------------------------------------------------------------------------
# the model, stage by stage
# --------------------------------------------------------------------------
def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model):
    return {
        n
        for n, p in model.named_parameters() if not torch.equal(before[n], p)
    }


def prefixes(names):
    return {n.split('.')[0] for n in names}


def test_parameters_that_change_in_each_stage():
    model = build_model()
    model.train()
    ow = stage_optim_wrappers(model)
    labels = [0, 0, 3, 3]

    model.switch_stage('tsg')
    assert model.class_text_feats is None
    before = snapshot(model)
    log = model.train_step(feature_batch(labels), ow)
    assert set(log) == {'loss', 'loss_supcon_i2t', 'loss_supcon_t2i'}
    assert changed(before, model) == {'prompt_learner.cls_ctx'}

    model.switch_stage('ife')
    expected_text = model.prompt_learner.all_class_features(model.text_encoder)
    torch.testing.assert_close(model.class_text_feats, expected_text)
    text_at_entry = model.class_text_feats.clone()
    before = snapshot(model)
    log = model.train_step(image_batch(labels), ow)
    assert {'loss_id', 'loss_triplet', 'loss_i2t_vis',
            'loss_i2t_ir'} <= set(log)
    moved = changed(before, model)
    assert prefixes(moved) == {'image_encoder', 'head', 'ife_neck'}
    assert 'ife_neck.fc2.weight' in moved
    # T stays frozen for the whole stage
    assert torch.equal(model.class_text_feats, text_at_entry)

    model.switch_stage('hsa')
    assert model.class_text_feats is None
    before = snapshot(model)
    log = model.train_step(image_batch(labels, seed=1), ow)
    assert {'loss_id', 'loss_triplet', 'loss_supcon_t2i',
            'loss_align'} <= set(log)
    moved = changed(before, model)
    # prompts and image side together; text encoder (frozen) and the IFE
    # neck (an ife-only module) do not move
    assert prefixes(moved) == {'image_encoder', 'head', 'prompt_learner'}
    assert 'prompt_learner.cls_ctx' in moved
    # the prompts' learning rate in hsa is the small one
    hsa_groups = ow['hsa'].optimizer.param_groups
    prompt_lr = [
        g['lr'] for g in hsa_groups
        if any(p is model.prompt_learner.cls_ctx for p in g['params'])
    ]
    assert prompt_lr == [pytest.approx(3.5e-6)]
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_tsg_rejects_infrared_features():
    model = build_model()
    model.switch_stage('tsg')
    batch = feature_batch([0, 1])
    batch['data_samples']['modality'] = torch.tensor([0, 1])
    with pytest.raises(
            ValueError,
            match=r'visible features only, but the '
            r'cached batch holds 1 infrared .*modalities=\["vis"\]'):
        model(batch['inputs'], batch['data_samples'], mode='loss')


def test_ife_neck_switch():
    with_neck = build_model(seed=0)
    without = build_model(seed=1, ife_neck=None)
    missing, unexpected = without.load_state_dict(
        with_neck.state_dict(), strict=False)
    assert not missing and all(k.startswith('ife_neck.') for k in unexpected)
    assert with_neck.with_ife_neck and not without.with_ife_neck
    assert isinstance(without.ife_neck, nn.Identity)
    assert with_neck.ife_neck.in_channels == 24  # the projection width
    # the ife optimiser config lists 'ife_neck' either way
    ow = stage_optim_wrappers(without)
    ife_params = {
        id(p)
        for g in ow['ife'].optimizer.param_groups
        for p in g['params']
    }
    assert ife_params == {
        id(p)
        for m in (without.image_encoder, without.head)
        for p in m.parameters() if p.requires_grad
    }
    # a neck that is no longer the identity changes only the IR i2t term
    nn.init.normal_(with_neck.ife_neck.fc2.weight, std=0.5)
    data = image_batch([1, 1, 4, 4])
    losses = {}
    for name, model in (('neck', with_neck), ('plain', without)):
        model.switch_stage('ife')
        model.eval()  # BN in eval mode: both models see the same features
        data_p = model.data_preprocessor(copy.deepcopy(data), False)
        with torch.no_grad():
            losses[name] = model.loss_ife(data_p['inputs'],
                                          data_p['data_samples'])
    assert float(losses['neck']['loss_i2t_vis']) == pytest.approx(
        float(losses['plain']['loss_i2t_vis']), rel=1e-6)
    assert float(losses['neck']['loss_i2t_ir']) != pytest.approx(
        float(losses['plain']['loss_i2t_ir']), rel=1e-3)
    # independent recomputation of both IR terms (weight i2t_ir = 2)
    with torch.no_grad():
        model = with_neck
        data_p = model.data_preprocessor(copy.deepcopy(data), False)
        _, proj = model.image_encoder(data_p['inputs'])
        text = model.class_text_feats
        y_ir = torch.tensor([1, 1, 4, 4])
        ir = proj[4:]
        plain = F.cross_entropy(ir @ text.t(), y_ir)
        neck = model.ife_neck
        adapted = ir + neck.fc2(F.relu(neck.fc1(neck.norm(ir))))
        with_adapter = F.cross_entropy(adapted @ text.t(), y_ir)
    assert float(losses['plain']['loss_i2t_ir']) == pytest.approx(
        2 * float(plain), rel=1e-5)
    assert float(losses['neck']['loss_i2t_ir']) == pytest.approx(
        2 * float(with_adapter), rel=1e-5)
    # retrieval never uses the neck
    with torch.no_grad():
        torch.testing.assert_close(
            with_neck.extract_feat(data_p['inputs'], data_p['data_samples']),
            without.extract_feat(data_p['inputs'], data_p['data_samples']))


def test_hsa_losses_against_per_sample_reference():
    model = build_model(seed=2)
    model.switch_stage('hsa')
    model.eval()
    data = model.data_preprocessor(image_batch([2, 2, 5, 5, 0, 0]), False)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model.loss_hsa(inputs, samples)
    labels = torch.tensor([2, 2, 5, 5, 0, 0] * 2)
    mods = torch.tensor([0] * 6 + [1] * 6)
    with torch.no_grad():
        _, v = model.image_encoder(inputs)
        # CLIP-ReID's t2i form: one text row per image (duplicates included)
        per_sample_text = model.prompt_learner(labels, model.text_encoder)
        expected = supcon_loss(per_sample_text, v, labels, labels)
        unique_text = model.prompt_learner(
            torch.tensor([0, 2, 5]), model.text_encoder)
        expected_align = reference_alignment(v.double(), unique_text.double(),
                                             labels, mods, 1.0, False,
                                             'symmetric')
    assert float(losses['loss_supcon_t2i'].detach()) == pytest.approx(
        float(expected), rel=1e-5)
    assert float(losses['loss_align'].detach()) == pytest.approx(
        float(expected_align), rel=1e-4)
    # the text gets a gradient from both terms
    model.prompt_learner.cls_ctx.grad = None
    (losses['loss_supcon_t2i'] + losses['loss_align']).backward()
    grad = model.prompt_learner.cls_ctx.grad
    assert grad[[0, 2, 5]].abs().sum(dim=(1, 2)).min() > 0
    assert grad[[1, 3, 4]].abs().max() == 0
    # the alignment term is removable
    no_align = build_model(seed=2, align_loss=None)
    no_align.switch_stage('hsa')
    assert 'loss_align' not in no_align.loss_hsa(inputs, samples)


def test_loss_weights_and_stage_names():
    with pytest.raises(
            TypeError,
            match=r'write supcon_t2i_loss=dict\(\.\.\., loss_weight=0\.5\)'):
        build_model(loss_weights=dict(supcon_t2i=0.5))
    with pytest.raises(TypeError, match='instead of i2t_loss'):
        build_model(i2t_loss=dict(type='ImageTextCELoss'))
    model = build_model(
        i2t_ir_loss=dict(type='ImageTextCELoss', loss_weight=5.0))
    assert model.i2t_ir_loss.loss_weight == 5.0
    assert model.i2t_vis_loss.loss_weight == 1.0
    assert model.i2t_loss is None
    with pytest.raises(KeyError, match='has no stage "finetune"'):
        model.switch_stage('finetune')


# --------------------------------------------------------------------------
# resume inside hsa, through a real Runner
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'make_toy_vireid.py')
    spec = importlib.util.spec_from_file_location('make_toy_vireid', path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = str(tmp_path_factory.mktemp('toy') / 'sysu')
    summary = gen.make_toy_dataset(
        'sysu',
        out,
        num_ids=6,
        seed=0,
        imgs_per_cam=2,
        img_size=(32, 16),
        verbose=False)
    # SYSU trains on its train + val identities
    return out, summary['ids']['train'] + summary['ids']['val']


class _OptimStateRecorder(Hook):
    """Keeps a copy of the hsa optimiser state when epoch 4 starts (after
    any resume has been loaded)."""

    priority = 'LOWEST'

    def __init__(self):
        self.states = {}

    def before_train_epoch(self, runner):
        ow = runner.optim_wrapper['hsa']
        self.states[runner.epoch] = copy.deepcopy(ow.optimizer.state_dict())


def runner_cfg(root, num_ids, work_dir, name):
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow'),
        dict(type='Resize', scale=(16, 32), keep_ratio=False),
        dict(type='PackVIReIDInputs')
    ]
    train_pipeline = pipeline[:2] + [
        dict(type='RandomFlip', prob=0.5, direction='horizontal'), pipeline[2]
    ]
    optim = Config.fromfile(SCHEDULE).optim_wrapper.to_dict()
    return Config(
        dict(
            default_scope='mmvireid',
            model=model_cfg(num_classes=num_ids),
            work_dir=work_dir,
            experiment_name=name,
            train_dataloader=dict(
                batch_size=8,
                num_workers=0,
                sampler=dict(
                    type='CrossModalIdentitySampler',
                    num_ids=2,
                    num_instances=2),
                dataset=dict(
                    type='SYSUMM01Dataset',
                    data_root=root,
                    split='train',
                    pipeline=train_pipeline)),
            train_cfg=dict(
                type='MultiStageTrainLoop',
                stages=[
                    dict(
                        name='tsg',
                        epochs=1,
                        validate=False,
                        feature_cache=dict(
                            pipeline=pipeline,
                            batch_size=8,
                            extract_batch_size=16,
                            modalities=['vis'])),
                    dict(name='ife', epochs=1, validate=False),
                    dict(name='hsa', epochs=2, validate=False),
                ]),
            optim_wrapper=optim,
            default_hooks=dict(
                # epoch_3 (end of the first hsa epoch) and epoch_4 only:
                # every save pretty-prints the config, which is slow
                checkpoint=dict(
                    type='CheckpointHook', interval=1, save_begin=3),
                logger=dict(type='LoggerHook', interval=50)),
            custom_hooks=[dict(type='StageSwitchHook')],
            randomness=dict(seed=7),
            log_level='WARNING'))


def _prompt_state(state_dict, optimizer_params, prompt):
    """The hsa optimiser's state entry of ``prompt`` (cls_ctx)."""
    index = [i for i, p in enumerate(optimizer_params) if p is prompt]
    assert len(index) == 1
    return state_dict['state'][index[0]]


def test_resume_inside_hsa_restores_prompt_optimizer_state(toy_root, tmp_path):
    root, num_ids = toy_root
    # run A: tsg, ife, hsa (2 epochs) without interruption
    runner = Runner.from_cfg(
        runner_cfg(root, num_ids, str(tmp_path / 'a'), 'c4_resume_a'))
    runner.train()
    ckpt3 = torch.load(
        tmp_path / 'a' / 'epoch_3.pth', map_location='cpu', weights_only=False)
    ckpt4 = torch.load(
        tmp_path / 'a' / 'epoch_4.pth', map_location='cpu', weights_only=False)
    model_a = runner.model
    hsa_params = [
        p for g in runner.optim_wrapper['hsa'].optimizer.param_groups
        for p in g['params']
    ]
    prompt_a = _prompt_state(ckpt3['optimizer']['hsa'], hsa_params,
                             model_a.prompt_learner.cls_ctx)
    # after one hsa epoch the prompts have Adam moments of their own
    assert int(prompt_a['step']) > 0
    assert prompt_a['exp_avg'].abs().max() > 0

    # run B: resume from the end of the first hsa epoch
    cfg = runner_cfg(root, num_ids, str(tmp_path / 'b'), 'c4_resume_b')
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'a' / 'epoch_3.pth')
    runner_b = Runner.from_cfg(cfg)
    recorder = _OptimStateRecorder()
    runner_b.register_hook(recorder)
    runner_b.train()
    assert list(recorder.states) == [3]  # only the last epoch ran
    assert runner_b.model.current_stage == 'hsa'

    def assert_same_state(got, expected):
        assert got['param_groups'] == expected['param_groups']
        assert set(got['state']) == set(expected['state'])
        for key, entry in expected['state'].items():
            for name, value in entry.items():
                torch.testing.assert_close(got['state'][key][name], value)

    # the restored hsa optimiser (prompts included) is the saved one ...
    assert_same_state(recorder.states[3], ckpt3['optimizer']['hsa'])
    hsa_params_b = [
        p for g in runner_b.optim_wrapper['hsa'].optimizer.param_groups
        for p in g['params']
    ]
    prompt_b = _prompt_state(recorder.states[3], hsa_params_b,
                             runner_b.model.prompt_learner.cls_ctx)
    torch.testing.assert_close(prompt_b['exp_avg'], prompt_a['exp_avg'])
    # ... and the resumed run ends where the uninterrupted one did
    assert_same_state(runner_b.optim_wrapper['hsa'].optimizer.state_dict(),
                      ckpt4['optimizer']['hsa'])
    torch.testing.assert_close(runner_b.model.prompt_learner.cls_ctx,
                               ckpt4['state_dict']['prompt_learner.cls_ctx'])
