# Copyright (c) mmvireid contributors. All rights reserved.
"""Every config in configs/ parses, builds its model and is consistent.

Configs are discovered at collection time (every ``*.py`` below configs/
except ``_base_``), so a newly added config is tested without editing this
file. For each one the model is built with all ``pretrained`` keys set to
None (no download) and checked against the rest of the config:

* identities: every ``num_classes`` in the model (head, prompt learners,
  losses) equals ``model.num_classes``, every classifier has that many
  outputs, and it equals the training set's number of identities (real
  datasets: the official counts; the toy data: the generated set);
* stages: the stage plan names only stages the model class implements, every
  stage has exactly one optimiser whose ``modules`` exist and hold
  parameters, and the per-stage schedulers fit inside their stage;
* prompt stages on cached features need ``extract_cache_features``;
* MSEL's ``num_pos`` equals the sampler's images per identity.
"""
import copy
import os
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from mmvireid.engine.runner.multi_stage_loop import (MultiStageTrainLoop,
                                                     parse_stages)
from mmvireid.models.reid.base import BaseStagedReID
from mmvireid.registry import DATASETS, MODELS
from mmvireid.utils import register_all_modules

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
#: Training identities of the official releases (RegDB: per split).
OFFICIAL_NUM_CLASSES = dict(
    SYSUMM01Dataset=395, RegDBDataset=206, LLCMDataset=713)
TOY_SYSU_ROOT = 'data/toy_sysu/'
# Train identities of the other toy layouts as their configs' comments make
# them (make_toy_vireid.py --layout regdb --num-ids 128: half train;
# --layout llcm --num-ids 64: 43 train ids); generating them here would cost
# ~20 s.
TOY_NUM_CLASSES = {'data/toy_regdb/': 64, 'data/toy_llcm/': 43}


def discover_configs():
    found = []
    for root, dirs, files in os.walk(CONFIG_DIR):
        dirs[:] = sorted(d for d in dirs if d != '_base_')
        found += [
            osp.relpath(osp.join(root, f), REPO_ROOT) for f in files
            if f.endswith('.py')
        ]
    return sorted(found)


CONFIGS = discover_configs()


def drop_pretrained(cfg):
    if isinstance(cfg, dict):
        for key in list(cfg):
            if key == 'pretrained':
                cfg[key] = None
            else:
                drop_pretrained(cfg[key])
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            drop_pretrained(item)


@pytest.fixture
def skip_random_init(monkeypatch):
    """Leave weights uninitialised while building.

    About 90% of building a full CLIP RN50 / ViT-B model on a CPU is drawing
    random initial weights (normal_ / uniform_), which these structural
    checks never read.
    """
    monkeypatch.setattr(torch.Tensor, 'normal_', lambda t, *a, **k: t)
    monkeypatch.setattr(torch.Tensor, 'uniform_', lambda t, *a, **k: t)


def load_and_build(path, monkeypatch):
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    if cfg.get('custom_imports'):
        # projects/ are imported by module name from the repository root
        monkeypatch.syspath_prepend(REPO_ROOT)
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    drop_pretrained(model_cfg)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmvireid')):
        model = MODELS.build(model_cfg)
    return cfg, model


def test_discovery_sees_the_known_configs():
    # A broken walk (wrong folder, _base_ included) must not pass silently.
    assert 'configs/clip_vireid_toy.py' in CONFIGS
    assert 'configs/examples/clip_vireid_toy_3stage.py' in CONFIGS
    assert not any('/_base_/' in c for c in CONFIGS)


def expected_num_classes(cfg, toy_sysu_root):
    """The training set's identities, or None when it cannot be known."""
    loader = cfg.get('train_dataloader') or {}
    dataset = copy.deepcopy(loader.get('dataset') or {})
    kind = dataset.get('type')
    root = dataset.get('data_root')
    if root == TOY_SYSU_ROOT:
        # configs/_base_/datasets/toy_sysu.py = make_toy_vireid.py --layout
        # sysu --num-ids 64 --seed 0, which the fixture regenerates.
        dataset['data_root'] = toy_sysu_root
    elif root in TOY_NUM_CLASSES:
        return TOY_NUM_CLASSES[root]
    elif kind in OFFICIAL_NUM_CLASSES and not osp.isdir(
            osp.join(REPO_ROOT, root or '')):
        return OFFICIAL_NUM_CLASSES[kind]
    elif root is None or not osp.isdir(osp.join(REPO_ROOT, root)):
        return None
    else:
        dataset['data_root'] = osp.join(REPO_ROOT, root)
    dataset['pipeline'] = []
    with DefaultScope.overwrite_default_scope('mmvireid'):
        return DATASETS.build(dataset).num_classes


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_is_consistent(path, monkeypatch, skip_random_init,
                                         toy_sysu_root):
    cfg, model = load_and_build(path, monkeypatch)
    name = osp.basename(path)
    assert isinstance(model, BaseStagedReID), name

    # ---- identities
    num_classes = cfg.model.num_classes
    assert model.num_classes == num_classes
    for mod_name, module in model.named_modules():
        value = getattr(module, 'num_classes', None)
        if isinstance(value, int):
            assert value == num_classes, (
                f'{name}: {mod_name or "model"}.num_classes={value} but '
                f'model.num_classes={num_classes}')
    classifiers = getattr(model.head, 'classifiers', [])
    assert len(classifiers) > 0
    for fc in classifiers:
        assert fc.out_features == num_classes
    expected = expected_num_classes(cfg, toy_sysu_root)
    if expected is not None:
        assert num_classes == expected, (
            f'{name}: model.num_classes={num_classes} but the training set '
            f'has {expected} identities')

    # ---- stages
    stages = parse_stages(cfg.train_cfg.stages)
    stage_names = [s.name for s in stages]
    assert cfg.train_cfg.type == 'MultiStageTrainLoop'
    for stage in stages:
        assert stage.name in model.STAGES, (
            f'{name}: stage "{stage.name}" is not one of '
            f'{type(model).__name__}.STAGES {model.STAGES}')
        assert callable(getattr(model, f'loss_{stage.name}', None))
        if stage.get('feature_cache'):
            assert type(model).extract_cache_features is not \
                BaseStagedReID.extract_cache_features
    model.switch_stage(stage_names[0])  # runs _enter_stage: must not fail

    ow = cfg.optim_wrapper
    assert ow.get('constructor') == 'StageOptimWrapperConstructor'
    wrapper_keys = sorted(k for k in ow if k != 'constructor')
    assert wrapper_keys == sorted(stage_names), (
        f'{name}: optimisers for {wrapper_keys}, stages {stage_names}')
    for key in wrapper_keys:
        modules = ow[key]['modules']
        assert modules, f'{name}: stage {key} trains no module'
        for module_name in modules:
            sub = model.get_submodule(module_name)
            assert any(True for _ in sub.parameters()), (
                f'{name}: stage {key} module {module_name} has no parameter')

    # The loop shifts stage-relative schedulers and validates their ranges
    # (a stage shortened in a leaf config without its schedulers fails).
    loop = object.__new__(MultiStageTrainLoop)
    loop.stages = stages
    runner = SimpleNamespace(
        param_schedulers=copy.deepcopy(cfg.get('param_scheduler')))
    loop._shift_param_schedulers(runner)
    if isinstance(cfg.get('param_scheduler'), dict):
        assert set(cfg.param_scheduler) <= set(stage_names)

    # ---- MSEL reads K images per identity and modality
    num_instances = cfg.train_dataloader.sampler.get('num_instances')
    for module in model.modules():
        if type(module).__name__ == 'MSELLoss':
            assert module.num_pos == num_instances, (
                f'{name}: MSELLoss num_pos={module.num_pos} but the sampler '
                f'draws num_instances={num_instances}')


# ---------------------------------------------------------------------- #
# The config tutorial's examples do what docs/en/user_guides/config.md says.
# ---------------------------------------------------------------------- #
def test_vit_b16_recipe_swaps_the_backbone(monkeypatch, skip_random_init):
    base_cfg, base = load_and_build('configs/clip_vireid_sysu.py', monkeypatch)
    cfg, model = load_and_build('configs/clip_vireid_vit-b16_sysu.py',
                                monkeypatch)
    assert base.image_encoder.arch_type == 'resnet'
    assert model.image_encoder.arch_type == 'vit'
    # ViT-B/16: 768-d class token, 512-d projection; stride 12 gives a
    # 23 x 11 grid of overlapping patches; SIE over SYSU's cameras 1..6
    assert model.image_encoder.feat_dim == 768
    assert model.image_encoder.proj_dim == 512
    assert model.image_encoder.grid_size == (23, 11)
    assert tuple(model.image_encoder.cam_embed.shape) == (7, 768)
    assert 'last_stride' not in cfg.model.image_encoder
    # CLIP-ReID's ViT recipe: epochs 120 / 60, ID weight 0.25
    assert [s['epochs'] for s in cfg.train_cfg.stages] == [120, 60]
    assert model.id_loss.loss_weight == 0.25
    assert cfg.optim_wrapper.finetune.optimizer.lr == 5e-6
    # the data are the RN50 recipe's
    assert cfg.train_dataloader == base_cfg.train_dataloader
    assert [fc.in_features for fc in model.head.classifiers] == [768, 512]


def test_toy_is_a_tiny_resnet(monkeypatch):
    _, model = load_and_build('configs/clip_vireid_toy.py', monkeypatch)
    enc = model.image_encoder
    assert enc.arch_type == 'resnet'
    # width 8 -> layer4 has 32 * 8 channels; stride 1 -> 64/16 x 32/16
    feat, proj = enc(torch.randn(2, 3, 64, 32))
    assert feat.shape == (2, 256, 4, 2)
    assert proj.shape == (2, 64)


def test_example_vit_toy_swaps_the_backbone(monkeypatch):
    _, model = load_and_build('configs/examples/clip_vireid_vit_toy.py',
                              monkeypatch)
    enc = model.image_encoder
    assert enc.arch_type == 'vit'
    # 8x8 patches on 64x32 -> an 8x4 grid; CLS feature of width 64
    assert enc.grid_size == (8, 4)
    feat, proj = enc(torch.randn(2, 3, 64, 32))
    assert feat.shape == (2, 64)
    assert proj.shape == (2, 64)


def test_example_losses(monkeypatch):
    _, model = load_and_build('configs/examples/clip_vireid_toy_wrt-loss.py',
                              monkeypatch)
    assert type(model.triplet_loss).__name__ == 'WRTTripletLoss'
    assert model.id_loss.epsilon == 0.0
    assert (model.id_loss.loss_weight, model.triplet_loss.loss_weight,
            model.i2t_loss.loss_weight) == (1.0, 0.15, 1.0)


def test_example_stage_plan_only():
    cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'examples', 'clip_vireid_toy_short-prompt.py'))
    base = Config.fromfile(osp.join(CONFIG_DIR, 'clip_vireid_toy.py'))
    prompt, finetune = cfg.train_cfg.stages
    assert prompt['epochs'] == 3
    assert prompt['feature_cache']['modalities'] == ['vis']
    assert prompt['feature_cache']['pipeline'] == base.test_pipeline
    assert finetune == base.train_cfg.stages[1]
    assert cfg.param_scheduler.finetune == base.param_scheduler.finetune
    assert cfg.model == base.model


def test_example_added_stage_trains_only_the_head(monkeypatch):
    cfg, model = load_and_build('configs/examples/clip_vireid_toy_3stage.py',
                                monkeypatch)
    assert model.STAGES == ('prompt', 'finetune', 'align')
    assert [s['name'] for s in cfg.train_cfg.stages] == list(model.STAGES)
    assert cfg.optim_wrapper.align.modules == ['head']
    # inherited stage settings survive the list rewrite
    assert cfg.optim_wrapper.finetune.optimizer.lr == 3e-4

    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    p, k = 2, 4  # P identities x K images, visible block then infrared
    labels = torch.tensor([0] * k + [1] * k)
    inputs = torch.randn(2 * p * k, 3, 64, 32)
    samples = []
    for i, modality in enumerate(['vis'] * (p * k) + ['ir'] * (p * k)):
        s = DataSample(metainfo=dict(modality=modality, cam_id=1))
        s.set_gt_label(int(labels[i % (p * k)]))
        samples.append(s)
    model.train()
    model.switch_stage('align')
    losses = model.loss_align(inputs, samples)
    assert set(losses) == {'loss_id', 'loss_msel'}
    total = losses['loss_id'] + losses['loss_msel']
    assert torch.isfinite(total)
    total.backward()
    head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
    assert head_grads and all(g is not None for g in head_grads)
    assert all(p.grad is None for p in model.image_encoder.parameters())


@pytest.mark.parametrize('how', ['leaf', 'base_list'])
def test_tensorboard_switch(tmp_path, how):
    """Both documented switches add TensorBoard next to the local backend
    and change nothing else."""
    if how == 'leaf':
        cfg = Config.fromfile(
            osp.join(CONFIG_DIR, 'examples', 'clip_vireid_toy_tensorboard.py'))
    else:  # the toy config with its runtime base replaced
        text = open(osp.join(CONFIG_DIR, 'clip_vireid_toy.py')).read()
        assert "'_base_/default_runtime.py'" in text
        text = text.replace("'_base_/default_runtime.py'",
                            "'_base_/tensorboard_runtime.py'")
        # a copy elsewhere: its relative bases become absolute
        text = text.replace("'_base_/", f"'{CONFIG_DIR}/_base_/")
        cfg_file = tmp_path / 'toy_tb.py'
        cfg_file.write_text(text)
        cfg = Config.fromfile(str(cfg_file))
    types = [b['type'] for b in cfg.visualizer.vis_backends]
    assert types == ['LocalVisBackend', 'TensorboardVisBackend']
    plain = Config.fromfile(osp.join(CONFIG_DIR, 'clip_vireid_toy.py'))
    for key in ('model', 'train_cfg', 'default_hooks', 'custom_hooks'):
        assert cfg[key] == plain[key]
    pytest.importorskip('tensorboard')
    from mmengine.visualization import Visualizer
    vis = Visualizer(
        name=f'tb_switch_test_{how}',
        vis_backends=copy.deepcopy(cfg.visualizer.vis_backends),
        save_dir=str(tmp_path))
    vis.add_scalars(dict(loss=1.5), step=1)
    vis.close()
    events = [
        f for _, _, files in os.walk(tmp_path) for f in files
        if f.startswith('events.out.tfevents')
    ]
    assert len(events) == 1


# ---------------------------------------------------------------------- #
# model-index.yml and the metafiles
# ---------------------------------------------------------------------- #
def test_model_index_lists_every_method_config():
    from mmengine.fileio import load
    index = load(osp.join(REPO_ROOT, 'model-index.yml'))
    names, listed = set(), set()
    for meta in index['Import']:
        meta_file = osp.join(REPO_ROOT, meta)
        assert osp.isfile(meta_file), meta
        content = load(meta_file)
        collections = {c['Name']: c for c in content['Collections']}
        for model in content['Models']:
            assert model['Name'] not in names, model['Name']
            names.add(model['Name'])
            assert model['In Collection'] in collections
            assert osp.isfile(osp.join(REPO_ROOT, model['Config'])), (
                f'{meta}: {model["Name"]} names a missing config '
                f'{model["Config"]}')
            # a model's name is its config file's, so users can pass either
            stem = osp.splitext(osp.basename(model['Config']))[0]
            assert model['Name'] == stem, (
                f'{meta}: model "{model["Name"]}" must be named after its '
                f'config, "{stem}"')
            # never a number that was not measured: empty until trained
            assert isinstance(model['Results'], list)
            listed.add(model['Config'])
    # Method configs live at the top level; tutorials (examples/) and
    # ablations are not model-zoo entries.
    top_level = {c for c in CONFIGS if c.count('/') == 1}
    missing = sorted(top_level - listed)
    assert not missing, (
        f'{missing} are not in any configs/<method>/metafile.yml: add an '
        'entry (Results: [] and Weights: "" until trained).')


def test_method_readmes_list_their_recipes():
    """configs/<method>/README.md (the collection's README in its metafile)
    has a row for every recipe of the metafile."""
    from mmengine.fileio import load
    index = load(osp.join(REPO_ROOT, 'model-index.yml'))
    for meta in index['Import']:
        content = load(osp.join(REPO_ROOT, meta))
        for collection in content['Collections']:
            readme = collection['README']
            assert readme == osp.join(osp.dirname(meta), 'README.md'), meta
            text = open(osp.join(REPO_ROOT, readme)).read()
            rows = [line for line in text.splitlines() if line.startswith('|')]
            for model in content['Models']:
                assert any(f'`{model["Config"]}`' in row for row in rows), (
                    f'{readme} has no table row for {model["Config"]}')


#: The toy recipe of every method: each starts from the pretrained toy CLIP.
TOY_RECIPES = ('configs/clip_vireid_toy.py', 'configs/clip_vireid_toy_regdb.py',
               'configs/clip_vireid_toy_llcm.py', 'configs/eees_toy.py',
               'configs/csdn_toy.py', 'configs/clip4vireid_toy.py')


@pytest.mark.parametrize('path', TOY_RECIPES)
def test_toy_recipes_load_the_pretrained_toy_clip(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    arch = 'tiny_vit' if 'vision_cfg' in cfg.model.image_encoder.arch and \
        'patch_size' in cfg.model.image_encoder.arch.vision_cfg else 'tiny_rn'
    # conftest points MMVIREID_TOY_CLIP_DIR at the tests' own weights
    expected = osp.join(os.environ['MMVIREID_TOY_CLIP_DIR'], f'{arch}.pth')
    assert cfg.model.image_encoder.pretrained == expected
    assert cfg.model.text_encoder.pretrained == expected
    assert osp.isfile(expected)
