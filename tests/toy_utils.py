# Copyright (c) mmvireid contributors. All rights reserved.
import copy
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.hooks import Hook

from mmvireid.registry import HOOKS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: A tiny CLIP text tower (1 layer of width 32) for random-init test models.
TINY_TEXT = dict(
    context_length=77, vocab_size=49408, width=32, heads=2, layers=1)
#: A ModifiedResNet (the RN50 layout) of width 8 at 64x32 with that text
#: tower: 256-channel layer4 map, 32-d projection, BatchNorms in the stems.
TINY_RN = dict(
    embed_dim=32,
    vision_cfg=dict(
        image_size=(64, 32), layers=(1, 1, 1, 1), width=8, head_width=8),
    text_cfg=TINY_TEXT)


def make_toy_dataset(layout: str, root, **kwargs) -> str:
    """Write toy data with ``tools/dataset_converters/make_toy_vireid.py``
    (``tools/`` is not a package); returns ``root`` as a string."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
    try:
        from make_toy_vireid import make_toy_dataset as make
    finally:
        sys.path.pop(0)
    kwargs.setdefault('seed', 0)
    kwargs.setdefault('verbose', False)
    make(layout, str(root), **kwargs)
    return str(root)


def pretrain_toy_clip(arch: str, out: str, **kwargs) -> dict:
    """Run ``tools/pretrain_toy_clip.py``'s :func:`pretrain` quietly."""
    import contextlib
    import io
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
    try:
        from pretrain_toy_clip import pretrain
    finally:
        sys.path.pop(0)
    with contextlib.redirect_stdout(io.StringIO()):
        return pretrain(arch, out, **kwargs)


def toy_config(data_root: str,
               work_dir: str,
               config: str = 'configs/clip_vireid_toy.py',
               prompt_epochs: int = 2,
               finetune_epochs: int = 2,
               validate: bool = False) -> Config:
    """The toy config shortened for tests: few epochs, every-epoch
    checkpoints, no logging noise."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = data_root
    stages = copy.deepcopy(cfg.train_cfg.stages)
    stages[0]['epochs'] = prompt_epochs
    stages[-1]['epochs'] = finetune_epochs
    cfg.train_cfg.stages = stages
    cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = dict(
        prompt=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
        finetune=[
            dict(type='MultiStepLR', milestones=[1], gamma=0.5, by_epoch=True)
        ])
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    if not validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=7, deterministic=True)
    cfg.log_level = 'WARNING'
    return cfg


@HOOKS.register_module(force=True)
class RecordLossesHook(Hook):
    """Records (epoch, iter, stage, loss) of every training iteration and can
    crash the run at a given global iteration (simulating a kill)."""

    priority = 'VERY_LOW'

    def __init__(self, crash_at_iter=None):
        self.records = []
        self.crash_at_iter = crash_at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        self.records.append(
            (runner.epoch, runner.iter, model.current_stage,
             float(outputs['loss'])))
        if self.crash_at_iter is not None and \
                runner.iter + 1 >= self.crash_at_iter:
            raise KeyboardInterrupt(f'simulated kill at iter {runner.iter}')
