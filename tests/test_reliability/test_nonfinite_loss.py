# Copyright (c) mmvireid contributors. All rights reserved.
"""A NaN loss stops training (naming term, iteration, stage) before any
checkpoint or metric is written after it; or, as a switch, the step is
skipped and counted."""
import os
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner
from toy_utils import toy_config

from mmvireid.engine.hooks import DeferredRuntimeInfoHook, NonFiniteLossError
from mmvireid.utils import register_all_modules

register_all_modules(init_default_scope=False)


def _nan_config(root, work_dir):
    # 1 prompt epoch, 2 fine-tuning epochs; the i2t weight NaN makes the
    # loss of the first fine-tuning step NaN
    cfg = toy_config(root, work_dir, prompt_epochs=1, finetune_epochs=2,
                     validate=True)
    cfg.model.i2t_loss.loss_weight = float('nan')
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=-1,
        save_best='reid/Rank-1', rule='greater')
    return cfg


def test_nan_loss_stops_before_any_checkpoint(toy_sysu_root, tmp_path):
    work_dir = str(tmp_path / 'wd')
    runner = Runner.from_cfg(_nan_config(toy_sysu_root, work_dir))
    with pytest.raises(NonFiniteLossError) as exc:
        runner.train()
    msg = str(exc.value)
    assert msg.startswith('loss = nan at iteration ')
    assert '(epoch 2) of stage "finetune"' in msg
    assert 'nonfinite_loss="skip"' in msg
    files = sorted(os.listdir(work_dir))
    # the prompt epoch's checkpoint exists; nothing after the NaN step
    assert 'epoch_1.pth' in files
    assert 'epoch_2.pth' not in files
    assert not any(f.startswith('best_') for f in files)


def test_skip_switch_counts_and_skips(toy_sysu_root, tmp_path):
    cfg = _nan_config(toy_sysu_root, str(tmp_path / 'wd'))
    cfg.train_cfg.stages[-1]['epochs'] = 1
    cfg.default_hooks.runtime_info = dict(
        type='DeferredRuntimeInfoHook', nonfinite_loss='skip')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    seen = {}

    def snapshot(runner_):
        seen['encoder'] = {
            k: v.clone()
            for k, v in model.image_encoder.state_dict().items()
            if not k.endswith(('running_mean', 'running_var',
                               'num_batches_tracked'))
        }

    # the encoder's weights when fine-tuning starts
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'StageSwitchHook')
    original = hook.before_train_epoch

    def before_train_epoch(runner_):
        original(runner_)
        if model.current_stage == 'finetune' and 'encoder' not in seen:
            snapshot(runner_)

    hook.before_train_epoch = before_train_epoch
    runner.train()
    steps = len(runner.train_dataloader)
    assert model.nonfinite_skipped_steps == steps
    after = model.image_encoder.state_dict()
    for key, value in seen['encoder'].items():
        assert torch.equal(after[key], value), key
    scalars = runner.message_hub.log_scalars
    assert scalars['train/nonfinite_skipped'].current() == 1.0
    assert osp.isfile(osp.join(runner.work_dir, 'epoch_2.pth'))


def test_policy_is_checked():
    with pytest.raises(ValueError, match="nonfinite_loss must be one of"):
        DeferredRuntimeInfoHook(nonfinite_loss='ignore')
