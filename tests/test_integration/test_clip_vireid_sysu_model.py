# Copyright (c) mmvireid contributors. All rights reserved.
"""Build the full clip_vireid_sysu.py model (random init) and run one
training step of each stage on a 2-identity batch at 288x144."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample
from toy_utils import REPO_ROOT

from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='module')
def sysu_model_and_optim():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/clip_vireid_sysu.py'))
    cfg.model.image_encoder.pretrained = None  # no download in tests
    cfg.model.text_encoder.pretrained = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    return cfg, model, optim


def _changed(before, model, prefix):
    return any(not torch.equal(before[k], v) for k, v in
               model.state_dict().items() if k.startswith(prefix))


def test_real_recipe_model_shapes(sysu_model_and_optim):
    cfg, model, _ = sysu_model_and_optim
    assert model.num_classes == 395
    assert model.image_encoder.feat_dim == 2048
    assert model.image_encoder.proj_dim == 1024
    assert model.prompt_learner.cls_ctx.shape == (395, 4, 512)
    assert cfg.train_cfg.stages[0]['epochs'] == 60
    assert cfg.train_cfg.stages[1]['epochs'] == 120


def test_one_step_per_stage_2_ids(sysu_model_and_optim):
    _, model, optim = sysu_model_and_optim
    labels = torch.tensor([0, 0, 1, 1])
    modality = torch.tensor([0, 0, 1, 1])

    # stage "prompt": a batch of cached 1024-d RN50 attention-pool features
    model.switch_stage('prompt')
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    feats = torch.randn(4, 1024)
    log = model.train_step(
        dict(inputs=feats,
             data_samples=dict(gt_label=labels, modality=modality)), optim)
    assert set(log) >= {'loss', 'loss_supcon_i2t', 'loss_supcon_t2i'}
    assert torch.isfinite(log['loss'])
    assert _changed(before, model, 'prompt_learner')
    assert not _changed(before, model, 'image_encoder')
    assert not _changed(before, model, 'head')

    # stage "finetune": 2 ids x 2 images x 2 modalities at 288x144
    model.switch_stage('finetune')
    assert model.class_text_feats.shape == (395, 1024)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    imgs = [torch.randint(0, 255, (3, 288, 144), dtype=torch.uint8)
            for _ in range(8)]
    samples = []
    for i in range(8):
        s = DataSample(metainfo=dict(
            modality='vis' if i < 4 else 'ir', cam_id=1 if i < 4 else 3))
        s.set_gt_label(int(i % 4 >= 2))
        samples.append(s)
    log = model.train_step(dict(inputs=imgs, data_samples=samples), optim)
    assert set(log) >= {'loss_id', 'loss_triplet', 'loss_i2t'}
    assert torch.isfinite(log['loss'])
    assert _changed(before, model, 'image_encoder')
    assert _changed(before, model, 'head')
    assert not _changed(before, model, 'prompt_learner')
    assert not _changed(before, model, 'text_encoder')

    # test feature: concat(pooled layer4, proj) = 3072, L2-normalised
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=imgs[:2], data_samples=samples[:2]), False)
        out = model(**data, mode='predict')
    assert out[0].pred_feat.shape == (3072, )
    assert torch.allclose(out[0].pred_feat.norm(), torch.tensor(1.0))


@pytest.mark.parametrize('features', [(), ('feat', 'layer3'),
                                      ('feat', 'feat')])
def test_triplet_features_are_checked(features):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/clip_vireid_sysu.py'))
    cfg.model.triplet_features = features
    with pytest.raises(ValueError, match='triplet_features must be distinct'):
        MODELS.build(cfg.model)
