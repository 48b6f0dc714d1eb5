# Copyright (c) mmvireid contributors. All rights reserved.
"""Print the merged config, as mmpretrain's ``print_config.py``, and a
summary of its stage plan.

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]
        [--no-summary | --summary-only]

The summary lists, per stage of ``train_cfg.stages``: the epochs, what trains
(the stage's ``optim_wrapper.<stage>.modules``), the optimizer, the
learning-rate schedulers with the rate at the first and last epoch of the
stage (the real schedulers, built and stepped as in training, see
:mod:`mmvireid.utils.stage_summary`) and the feature cache. Nothing is
built but the schedulers: no model, no dataset.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmvireid.utils import register_all_modules
from mmvireid.utils.preflight import load_config
from mmvireid.utils.stage_summary import format_stage_summary, stage_summary
from mmvireid.utils.tool_utils import UserInputError, run_or_explain


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the merged config and its per-stage summary')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs, e.g. '
        'train_cfg.stages.1.epochs=10 (as tools/train.py)')
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--no-summary', action='store_true', help='the config only')
    group.add_argument(
        '--summary-only', action='store_true', help='the stage summary only')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)

    def show():
        cfg = load_config(args.config, args.cfg_options)
        if not args.summary_only:
            import rich.console
            rich.console.Console().print(cfg.pretty_text, markup=False)
        if args.no_summary:
            return
        if not (cfg.get('train_cfg') or {}).get('stages'):
            print(f'{args.config}: no train_cfg.stages, no stage summary.')
            return
        try:
            rows = stage_summary(cfg)
        except (ValueError, KeyError) as e:
            msg = e.args[0] if e.args and isinstance(e.args[0], str) \
                else str(e)
            raise UserInputError(f'{args.config}: {msg}') from e
        print(format_stage_summary(rows))

    run_or_explain(show)


if __name__ == '__main__':
    main(sys.argv[1:])
