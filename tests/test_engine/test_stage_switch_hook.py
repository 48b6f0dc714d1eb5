# Copyright (c) mmvireid contributors. All rights reserved.
import pytest
import torch
from mmengine.runner import Runner
from toy_utils import toy_config

from mmvireid.datasets.feature_cache import FeatureCacheDataset
from mmvireid.engine.hooks import StageSwitchHook
from mmvireid.utils import register_all_modules

register_all_modules()


@pytest.fixture()
def runner(toy_sysu_root, tmp_path):
    cfg = toy_config(toy_sysu_root, str(tmp_path), prompt_epochs=2,
                     finetune_epochs=3)
    runner = Runner.from_cfg(cfg)
    runner.train_loop  # builds the loop (and shifts the schedulers)
    return runner


def _hook(runner):
    return [h for h in runner.hooks if isinstance(h, StageSwitchHook)][0]


def test_switches_model_and_data_by_epoch(runner):
    hook = _hook(runner)
    hook.before_train(runner)
    image_loader = runner.train_loop.dataloader
    loop = runner.train_loop
    assert runner.max_epochs == 5

    calls = []
    orig = runner.model.switch_stage
    runner.model.switch_stage = lambda name: (calls.append(name),
                                              orig(name))[1]

    loop._epoch = 0
    hook.before_train_epoch(runner)
    assert runner.model.current_stage == 'prompt'
    cache = loop.dataloader.dataset
    assert isinstance(cache, FeatureCacheDataset)
    n_images = len(image_loader.dataset)
    assert len(cache) == n_images  # every train image once
    assert cache.feats.shape[1] == runner.model.image_encoder.proj_dim
    # cache order = dataset order, labels and modalities carried over
    labels = torch.as_tensor(image_loader.dataset.get_labels())
    assert torch.equal(cache.labels, labels)
    # the cached feature is the frozen encoder's output on the test view
    batch = next(iter(Runner.build_dataloader(dict(
        dataset=dict(runner.cfg.train_dataloader.dataset,
                     pipeline=runner.cfg.feature_cache.pipeline),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=3))))
    runner.model.eval()
    with torch.no_grad():
        direct = runner.model.extract_cache_features(batch)
    torch.testing.assert_close(direct, cache.feats[:3], rtol=1e-5, atol=1e-5)

    # idempotent within a stage: same loader object, no second switch
    loader_before = loop.dataloader
    loop._epoch = 1
    hook.before_train_epoch(runner)
    hook.before_train_epoch(runner)
    assert loop.dataloader is loader_before
    assert calls == ['prompt']

    loop._epoch = 2
    hook.before_train_epoch(runner)
    assert runner.model.current_stage == 'finetune'
    assert loop.dataloader is image_loader
    assert calls == ['prompt', 'finetune']
    assert runner.model.class_text_feats.shape[0] == runner.model.num_classes


def test_resumed_epoch_lands_in_its_stage(runner):
    hook = _hook(runner)
    hook.before_train(runner)
    runner.train_loop._epoch = 3  # as after resuming epoch_3.pth
    hook.before_train_epoch(runner)
    assert runner.model.current_stage == 'finetune'
    assert runner.model.class_text_feats is not None


def test_num_classes_mismatch_is_reported(toy_sysu_root, tmp_path):
    # checked by the loop, which the hook builds before the first epoch
    cfg = toy_config(toy_sysu_root, str(tmp_path))
    cfg.model.num_classes = 7
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'model.num_classes=7 but '
                       r'train_dataloader.dataset \(SYSUMM01Dataset\) has 43 '
                       r'train identities'):
        _hook(runner).before_train(runner)


def test_needs_multi_stage_loop(toy_sysu_root, tmp_path):
    cfg = toy_config(toy_sysu_root, str(tmp_path))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError, match='MultiStageTrainLoop'):
        _hook(runner).before_train(runner)


def test_the_stage_is_the_models_and_every_run_sets_its_loader(runner):
    """The hook keeps no stage of its own: it compares the epoch's stage
    with ``model.current_stage``, and the first epoch of a run sets the
    stage's loader even when the model is already in that stage (the loop
    starts every run with the image loader)."""
    hook = _hook(runner)
    assert not hasattr(hook, 'current_stage')
    hook.before_train(runner)
    loop = runner.train_loop
    image_loader = loop.dataloader
    runner.model.switch_stage('prompt')  # e.g. by an earlier run
    loop._epoch = 0
    hook.before_train_epoch(runner)
    assert runner.model.current_stage == 'prompt'
    assert isinstance(loop.dataloader.dataset, FeatureCacheDataset)
    cache_loader = loop.dataloader
    hook.before_train_epoch(runner)
    assert loop.dataloader is cache_loader
    # a second run starts from the image loader again
    loop.dataloader = image_loader
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert isinstance(loop.dataloader.dataset, FeatureCacheDataset)
    assert loop.dataloader is not cache_loader
