# Copyright (c) mmvireid contributors. All rights reserved.
"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``."""
import argparse
import json
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmvireid.apis import init_model
from mmvireid.utils import register_all_modules
from mmvireid.utils.checkpoint import load_model_checkpoint
from mmvireid.utils.fileio import atomic_write
from mmvireid.utils.tool_utils import (UserInputError, check_writable,
                                       disable_persistent_workers,
                                       preflight_config, preflight_datasets,
                                       run_or_explain, setup_cpu_distributed)
from mmvireid.utils.work_dir_lock import WorkDirLock
from mmvireid.visualization import enable_ranking_visualization


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a VI-ReID model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation log')
    parser.add_argument(
        '--out',
        help='write the metrics, every trial and direction included, to this '
        'JSON file (refuses to overwrite an existing file)')
    parser.add_argument(
        '--show-dir',
        help='write ranking lists (query, top-k gallery framed green/red, '
        'scores) of a sample of queries as PNGs to this folder')
    parser.add_argument(
        '--show-topk', type=int, default=10, help='matches per ranking list')
    parser.add_argument(
        '--show-num', type=int, default=20, help='queries drawn')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='extract features under fp16 autocast (CUDA)')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate a checkpoint that does not fit the config: the '
        'tensors that fit are loaded and the others (named in a warning) '
        'keep their initialisation. By default such a checkpoint is '
        'refused, since its numbers would not be that model\'s')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp_test(cfg) -> None:
    """Run the test loop under autocast (mmengine's ``test_cfg.fp16``)."""
    if not torch.cuda.is_available():
        raise UserInputError('--amp needs a CUDA device; none is available.')
    test_cfg = cfg.get('test_cfg') or {}
    test_cfg['fp16'] = True
    cfg.test_cfg = test_cfg


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not osp.isfile(args.checkpoint):
        raise UserInputError(f'checkpoint "{args.checkpoint}" does not exist')
    # loaded by main() (strictly), not by the Runner (never strict)
    cfg.load_from = None
    if args.out is not None and osp.exists(args.out):
        raise UserInputError(f'--out: "{args.out}" exists; refusing to '
                             'overwrite results. Choose another path.')
    if args.out is not None:
        check_writable(args.out, '--out', is_dir=False)
    if args.show_dir is not None:
        check_writable(args.show_dir, '--show-dir', is_dir=True)
    disable_persistent_workers(cfg)
    if args.amp:
        enable_amp_test(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.show_dir is not None:
        enable_ranking_visualization(cfg, args.show_dir, args.show_topk,
                                     args.show_num, weights=args.checkpoint)
    return cfg


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)

    def build_and_test():
        cfg = merge_args(Config.fromfile(args.config), args)
        preflight_config(cfg)
        preflight_datasets(cfg, loaders=('test_dataloader', ))
        if not args.non_strict:
            # before anything is written: a checkpoint of another model
            # would score a half-random one
            init_model(cfg, args.checkpoint, strict=True)
        # dist_test.sh on a machine without CUDA: gloo instead of nccl
        setup_cpu_distributed(cfg)
        with WorkDirLock(cfg.work_dir, command=' '.join(sys.argv)):
            runner = Runner.from_cfg(cfg)
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            load_model_checkpoint(
                model, args.checkpoint, strict=not args.non_strict)
            metrics = runner.test()
        if args.out is not None and runner.rank == 0:
            details = {}
            for metric in runner.test_evaluator.metrics:
                details.update(getattr(metric, 'last_results', {}) or {})
            # atomic: a crash never leaves a half-written results file
            atomic_write(args.out,
                         json.dumps(dict(metrics=metrics, details=details),
                                    indent=2))
            print(f'results written to {args.out}')

    run_or_explain(build_and_test)


if __name__ == '__main__':
    main()
