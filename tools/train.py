# Copyright (c) mmvireid contributors. All rights reserved.
"""Train a VI-ReID model: ``python tools/train.py CONFIG [options]``."""
import argparse
import os
import os.path as osp
import sys
import time

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.runner import Runner
from mmengine.utils import digit_version
from mmengine.utils.dl_utils import TORCH_VERSION

from mmvireid.registry import RUNNERS
from mmvireid.utils import register_all_modules
from mmvireid.utils.tool_utils import (AMP_CHOICES, UserInputError, apply_amp,
                                       check_auto_resume, check_cfg_options,
                                       check_resume_checkpoint,
                                       check_resume_compatible,
                                       disable_persistent_workers,
                                       preflight_config, preflight_datasets,
                                       preflight_training, rehearsal_config,
                                       run_or_explain, setup_cpu_distributed)
from mmvireid.utils.work_dir_lock import WorkDirLock


def parse_args():
    parser = argparse.ArgumentParser(description='Train a VI-ReID model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='auto',
        choices=AMP_CHOICES,
        help='automatic mixed precision (CUDA): bf16, fp16, or without a '
        'value bf16 where the GPU supports it (else fp16); evaluation runs '
        'under autocast too')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rates with the total batch size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='do not pin memory in dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='do not keep dataloader workers alive between epochs')
    parser.add_argument(
        '--rehearse',
        nargs='?',
        type=int,
        const=5,
        metavar='ITERS',
        help='before a long run: train every stage for ITERS iterations '
        '(default 5), with every stage switch, a checkpoint save, a resume '
        'from it and an evaluation (one gallery draw), in '
        '<work_dir>/rehearsal_<time>; the real work directory is not '
        'touched')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs, e.g. '
        'model.num_classes=206 train_dataloader.batch_size=32')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local_rank, torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge CLI arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        apply_amp(cfg, args.amp)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_resume_checkpoint(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if args.no_persistent_workers:
            loader['persistent_workers'] = False
    # torch < 1.8 and num_workers=0 cannot use persistent workers
    disable_persistent_workers(cfg,
                               digit_version(TORCH_VERSION) <
                               digit_version('1.8.0'))

    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.resume == 'auto':
        fallback = check_auto_resume(cfg.work_dir)
        if fallback is not None:
            cfg.load_from = fallback
    if cfg.get('resume'):
        target = cfg.get('load_from')
        pointer = osp.join(cfg.work_dir, 'last_checkpoint')
        if target is None and osp.isfile(pointer):
            with open(pointer) as f:
                target = f.read().strip() or None
        if target is not None and '://' not in target:
            # before anything is written: this method, a continuable plan
            check_resume_compatible(cfg, target)
    return cfg


def rehearse(cfg, iters: int) -> None:
    """Run every stage for a few iterations, save, resume, evaluate."""
    if iters < 1:
        raise UserInputError(f'--rehearse: ITERS must be >= 1, got {iters}')
    work_dir = osp.join(cfg.work_dir,
                        time.strftime('rehearsal_%Y%m%d_%H%M%S'))
    plan = ', '.join(s['name'] for s in cfg.train_cfg.stages)
    first = rehearsal_config(cfg, iters, work_dir)
    first.experiment_name = 'rehearsal'
    with WorkDirLock(work_dir, command=' '.join(sys.argv)):
        Runner.from_cfg(first).train()
        # resume from the first stage's checkpoint: the stage switches run
        # again, this time from a restored state
        second = rehearsal_config(cfg, iters, work_dir)
        second.experiment_name = 'rehearsal_resume'
        second.resume = True
        second.load_from = osp.join(work_dir, 'epoch_1.pth')
        Runner.from_cfg(second).train()
    print(f'Rehearsal passed: stages [{plan}], {iters} iterations each; '
          'checkpoint saved after every stage and resumed from the first; '
          f'evaluated with one gallery draw. Files: {work_dir}')


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)

    def build_and_train():
        cfg = merge_args(Config.fromfile(args.config), args)
        preflight_config(cfg)
        preflight_training(cfg)
        preflight_datasets(cfg)
        # torchrun on a machine without GPUs: gloo process group
        setup_cpu_distributed(cfg)
        if args.rehearse is not None:
            rehearse(cfg, args.rehearse)
            return
        # one run per work directory (the first thing written)
        with WorkDirLock(cfg.work_dir, command=' '.join(sys.argv)):
            if 'runner_type' not in cfg:
                runner = Runner.from_cfg(cfg)
            else:
                runner = RUNNERS.build(cfg)
            runner.train()

    run_or_explain(build_and_train)


if __name__ == '__main__':
    main()
