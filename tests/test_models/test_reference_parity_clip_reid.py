# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIPVIReID with its recipe defaults equals CLIP-ReID's code.

The fixtures ``tests/data/parity/clip_reid_{rn50,vit}.pt`` were written by
``tools/analysis_tools/reference_parity.py`` from Syliz517/CLIP-ReID at
eb1898b, running on tiny CLIPs with the real widths (RN50: one block per
stage; ViT-B/16: 12 blocks, SIE + overlapping patches). Here our model is
built from the real recipe configs (only the CLIP size, the weights, the
class count and an identity pixel normalisation changed) and fed the same
weights and inputs.

Tolerances:

* float32 features: ``rtol=1e-5``, ``atol=1e-6`` plus 1e-5 of the tensor's
  root mean square (elements near zero carry the rounding error of the
  larger terms they were summed from); loss values: ``rel=1e-5``;
* parameters after one Adam step: ``rtol=1e-5``, ``atol=1e-7`` (the step is
  about lr * sign(grad), so a sign flip of a gradient would show as a
  difference of about 1e-5 or more). The one exception is the attention key
  bias, whose gradient is zero up to rounding noise (see below): +-2 lr;
* learning rates (every epoch) and parameter-group settings: exact.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample
from toy_utils import REPO_ROOT

from mmvireid.engine.runner import parse_stages
from mmvireid.engine.runner.multi_stage_loop import shift_stage_schedulers
from mmvireid.registry import MODELS, PARAM_SCHEDULERS
from mmvireid.testing import (assert_recorded, generate_clip_state_dict,
                              state_dict_digest)
from mmvireid.utils import register_all_modules

register_all_modules()

FIXTURES = osp.join(REPO_ROOT, 'tests/data/parity')
CONFIGS = {
    'rn50': 'configs/clip_vireid_sysu.py',
    'vit': 'configs/clip_vireid_vit-b16_sysu.py',
}
FEAT = dict(rtol=1e-5, atol=1e-6, atol_rms=1e-5)
STEP = dict(rtol=1e-5, atol=1e-7)


def _samples(fx: dict) -> list:
    inputs = fx['inputs']
    samples = []
    for label, modality, cam in zip(inputs['labels'], inputs['modalities'],
                                    inputs['cams']):
        sample = DataSample().set_gt_label(int(label))
        sample.set_metainfo(
            dict(modality='vis' if int(modality) == 0 else 'ir',
                 cam_id=int(cam)))
        samples.append(sample)
    return samples


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def case(request, tmp_path_factory):
    """(fixture, config, our model with the fixture's weights, images)."""
    name = request.param
    fx = torch.load(osp.join(FIXTURES, f'clip_reid_{name}.pt'),
                    weights_only=True)
    assert fx['reference']['commit'].startswith('eb1898b')
    state = generate_clip_state_dict(fx['arch'], fx['seed'])
    # the CLIP weights are regenerated: they must be the ones the
    # reference ran with
    assert state_dict_digest(state) == fx['weights_digest']
    weights = str(tmp_path_factory.mktemp(name) / 'clip.pth')
    torch.save(state, weights)
    del state

    cfg = Config.fromfile(osp.join(REPO_ROOT, CONFIGS[name]))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.num_classes = fx['num_classes']
    # the fixture's images are already normalised
    model_cfg.data_preprocessor.update(mean=[0.] * 3, std=[1.] * 3,
                                       to_rgb=False)
    model_cfg.image_encoder.update(
        arch=fx['arch'], pretrained=weights,
        input_size=tuple(fx['input_size']))
    # NCHW as the reference: the recipe's channels_last changes only the
    # summation order of the convolutions (relative differences ~2e-5)
    model_cfg.image_encoder.pop('channels_last', None)
    model_cfg.text_encoder.update(arch=fx['arch'], pretrained=weights)
    model = MODELS.build(model_cfg)
    model.init_weights()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in fx['init'].items():
            params[key].copy_(value)
    images = fx['inputs']['image_codes'].float() / 64
    return fx, cfg, model, images


def _schedulers(cfg, optim_wrapper, stage):
    # resolved as MultiStageTrainLoop does (t_initial=None: stage length)
    planned = shift_stage_schedulers(cfg.param_scheduler,
                                     cfg.train_cfg.stages)
    begin = next(s['begin'] for s in parse_stages(cfg.train_cfg.stages)
                 if s['name'] == stage)
    # back to stage-relative epochs: the optimizer here starts at epoch 0
    return [
        PARAM_SCHEDULERS.build(
            dict(s, optimizer=optim_wrapper[stage], begin=s['begin'] - begin,
                 end=s['end'] - begin)) for s in planned[stage]
    ]


def _groups(model, optimizer) -> dict:
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: dict(lr=g['lr'], weight_decay=g['weight_decay'])
        for g in optimizer.param_groups for p in g['params']
        if p.requires_grad
    }


def _lr_per_epoch(cfg, model, stage: str, epochs: int) -> list:
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    schedulers = _schedulers(cfg, optim, stage)
    lrs = []
    for _ in range(epochs):
        lrs.append(
            sorted({g['lr']
                    for g in optim[stage].optimizer.param_groups}))
        for scheduler in schedulers:
            scheduler.step()
    return lrs


def test_recipe_matches_the_reference_config(case):
    fx, cfg, model, _ = case
    assert [s['epochs'] for s in cfg.train_cfg.stages] == fx['stage_epochs']
    ref = fx['stage2']['losses']['weights']
    assert (model.id_loss.loss_weight, model.triplet_loss.loss_weight,
            model.i2t_loss.loss_weight) == (ref['id'], ref['triplet'],
                                            ref['i2t'])
    assert model.triplet_features == ('mid', 'feat', 'proj')
    assert model.i2t_loss.epsilon == model.id_loss.epsilon == 0.1
    assert model.cache_camera_embedding is False
    enc = model.image_encoder
    if fx['sie'] is None:
        assert enc.cam_embed is None
    else:
        assert tuple(enc.cam_embed.shape)[0] == fx['sie']['num_cameras']
        assert enc.cam_coe == fx['sie']['coe']
        assert enc.stride_size == (fx['stride'], fx['stride'])


def test_learning_rate_of_every_epoch(case):
    fx, cfg, model, _ = case
    # exact: same formulas, evaluated in the same order
    stage1 = _lr_per_epoch(cfg, model, 'prompt', fx['stage_epochs'][0])
    assert [lrs[0] for lrs in stage1] == fx['stage1']['lr']
    stage2 = _lr_per_epoch(cfg, model, 'finetune', fx['stage_epochs'][1])
    assert stage2 == fx['stage2']['lr']


def test_both_stages_step_by_step(case):
    fx, cfg, model, images = case
    samples = _samples(fx)
    labels = fx['inputs']['labels']
    modalities = fx['inputs']['modalities']
    optim = build_optim_wrapper(model, cfg.optim_wrapper)

    # ---- prompt stage: cache in eval mode (no SIE), one SupCon step
    s1 = fx['stage1']
    model.switch_stage('prompt')
    model.eval()
    with torch.no_grad():
        cache = model.extract_cache_features(
            dict(inputs=images.clone(), data_samples=samples))
    assert_recorded(cache, s1['cache_feats'], 'stage-1 cache features',
                    **FEAT)
    with torch.no_grad():
        text = model.prompt_learner(labels, model.text_encoder)
    assert_recorded(text, s1['text_feats'], 'stage-1 text features', **FEAT)
    _schedulers(cfg, optim, 'prompt')
    assert _groups(model, optim['prompt'].optimizer) == s1['param_groups']
    model.train()
    log = model.train_step(
        dict(inputs=cache, data_samples=dict(gt_label=labels,
                                             modality=modalities)), optim)
    for key in ('loss_supcon_i2t', 'loss_supcon_t2i'):
        assert log[key].item() == pytest.approx(s1[key], rel=1e-5), key
    assert_recorded(model.prompt_learner.cls_ctx,
                    s1['after_step']['prompt_learner.cls_ctx'],
                    'cls_ctx after one stage-1 step', **STEP)

    # ---- finetune stage
    s2 = fx['stage2']
    model.switch_stage('finetune')
    assert_recorded(model.class_text_feats, s2['class_text_feats'],
                    'class text features T', **FEAT)
    _schedulers(cfg, optim, 'finetune')
    ours = _groups(model, optim['finetune'].optimizer)
    # the same trained tensors, each with the same lr and weight decay
    assert sorted(ours) == sorted(s2['param_groups'])
    assert ours == s2['param_groups']

    # outputs and loss terms, then the BatchNorm statistics are put back so
    # that the step below updates them once, as the reference did
    model.train()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        out = model.train_features(images, model.modalities_of(samples),
                                   model.cams_of(samples))
        ref = s2['train']
        for name in ('mid', 'feat', 'proj'):
            got = out['mid'] if name == 'mid' else \
                out['feats'][['feat', 'proj'].index(name)]
            assert_recorded(got, ref[name], f'train feature {name}', **FEAT)
        for i, logit in enumerate(out['logits']):
            assert_recorded(logit, ref['logits'][i], f'ID logits {i}',
                            **FEAT)
        # the reference's terms before its weights
        terms = s2['losses']
        for i, logit in enumerate(out['logits']):
            assert model.id_loss.unweighted(
                logit, labels).item() == pytest.approx(
                    terms['id'][i], rel=1e-5)
        feats = [out['mid']] + out['feats']
        for i, feat in enumerate(feats):
            assert model.triplet_loss.unweighted(
                feat, labels).item() == pytest.approx(
                    terms['triplet'][i], rel=1e-5)
        i2t = model.i2t_loss(out['feats'][1], model.class_text_feats, labels)
        assert i2t.item() == pytest.approx(
            terms['weights']['i2t'] * terms['i2t'], rel=1e-5)
    with torch.no_grad():
        for key, value in model.named_buffers():
            if key in buffers:
                value.copy_(buffers[key])

    log = model.train_step(dict(inputs=images, data_samples=samples), optim)
    w = terms['weights']
    assert log['loss_id'].item() == pytest.approx(
        w['id'] * sum(terms['id']), rel=1e-5)
    assert log['loss_triplet'].item() == pytest.approx(
        w['triplet'] * sum(terms['triplet']), rel=1e-5)
    assert log['loss'].item() == pytest.approx(terms['total'], rel=1e-5)
    params = dict(model.named_parameters())
    for key, expected in s2['after_step'].items():
        actual = params[key]
        if key.endswith(('attnpool.k_proj.bias', 'attn.in_proj_bias')):
            # The attention key bias shifts all logits of a query equally:
            # its gradient is zero up to rounding noise, which Adam's first
            # step scales to +-lr in either implementation. Only its range
            # is checked; the query and value biases strictly.
            lr = s2['param_groups'][key]['lr']
            key_part = slice(0, None) if 'k_proj' in key else slice(
                actual.numel() // 3, 2 * actual.numel() // 3)
            torch.testing.assert_close(
                actual.detach()[key_part], expected[key_part], rtol=0,
                atol=2.0001 * lr)
            mask = torch.ones(actual.numel(), dtype=torch.bool)
            mask[key_part] = False
            actual, expected = actual.detach()[mask], expected[mask]
        assert_recorded(actual, expected, f'{key} after one step', **STEP)

    model.eval()
    with torch.no_grad():
        feat = model.extract_feat(images, samples)
    assert_recorded(feat, s2['test_feat'], 'test feature', **FEAT)
