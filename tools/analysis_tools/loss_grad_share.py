# Copyright (c) mmvireid contributors. All rights reserved.
"""How much of the training signal each loss term carries.

A loss term whose weight makes it a thousandth of the total does nothing,
whatever its formula. This tool loads a checkpoint, enters a stage and, on
``--batches`` training batches, takes the gradient of every ``loss_*`` term
of the model's loss dict *separately*:

* ``|grad v|``: the L2 norm of its gradient on the projected image feature
  ``v [B, D]`` (the head's second input, the feature the EEES losses and
  i2t act on), summed over the batch;
* ``|grad theta|``: the L2 norm of its gradient on every trainable
  parameter.

Each is averaged over the batches; a term's *share* is its norm over the sum
of the norms of all terms. The values printed are the weighted terms, as
training sums them::

    # EEES on the toy, at the start of fine-tuning (epoch_10.pth: the end
    # of the prompt stage of configs/eees_toy.py)
    python tools/analysis_tools/loss_grad_share.py configs/eees_toy.py \\
        work_dirs/eees_toy/epoch_10.pth --stage finetune --batches 20

``--cfg-options`` applies to the config (e.g. other loss weights).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import torch


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Per-term gradient norms and shares of a model\'s '
        'losses on training batches.')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='weights to start from (the '
                        'prompt learner included)')
    parser.add_argument(
        '--stage', help='the stage whose losses to take (default: the '
        'last stage of train_cfg.stages)')
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the table as JSON')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def grad_shares(model, batches, params: List[torch.nn.Parameter]) -> dict:
    """Per-term gradient norms on ``v`` and on ``params``, averaged.

    Args:
        model: A ReID model in the stage to measure (``mode='loss'``).
        batches (Iterable[dict]): Dataloader batches (before the data
            preprocessor).
        params (list[Parameter]): The trainable parameters.

    Returns:
        dict: ``{term: {'value', 'grad_v', 'grad_param', 'share_v',
        'share_param'}}`` (means over the batches).
    """
    captured = {}

    def hook(module, args, output):
        feats = args[0]
        captured['v'] = feats[1] if isinstance(feats, (list, tuple)) \
            else feats

    handle = model.head.register_forward_hook(hook)
    sums: Dict[str, Dict[str, float]] = {}
    n = 0
    try:
        for batch in batches:
            data = model.data_preprocessor(batch, True)
            losses = model(**data, mode='loss')
            v = captured['v']
            for key, loss in losses.items():
                if not key.startswith('loss') or not loss.requires_grad:
                    continue
                grads = torch.autograd.grad(
                    loss, [v] + params, retain_graph=True, allow_unused=True)
                g_v = grads[0]
                g_p = [g for g in grads[1:] if g is not None]
                row = sums.setdefault(
                    key, dict(value=0.0, grad_v=0.0, grad_param=0.0))
                row['value'] += float(loss.detach())
                row['grad_v'] += 0.0 if g_v is None else float(g_v.norm())
                row['grad_param'] += float(
                    torch.sqrt(sum((g.float()**2).sum() for g in g_p))
                ) if g_p else 0.0
            n += 1
    finally:
        handle.remove()
    if not n:
        raise ValueError('no batch was measured')
    table = {k: {m: x / n for m, x in row.items()} for k, row in sums.items()}
    for norm in ('grad_v', 'grad_param'):
        total = sum(row[norm] for row in table.values()) or 1.0
        for row in table.values():
            row[f'share_{norm[5:]}'] = row[norm] / total
    return table


def markdown(table: dict) -> str:
    lines = [
        '| term | value | \\|∇v\\| | share of \\|∇v\\| | \\|∇θ\\| | share of '
        '\\|∇θ\\| |', '|---|---|---|---|---|---|'
    ]
    for key, row in table.items():
        lines.append(
            f'| {key} | {row["value"]:.4f} | {row["grad_v"]:.4f} | '
            f'{100 * row["share_v"]:.1f} % | {row["grad_param"]:.4f} | '
            f'{100 * row["share_param"]:.1f} % |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint

    from mmvireid.registry import MODELS
    from mmvireid.utils import register_all_modules
    from mmvireid.utils.tool_utils import UserInputError, run_or_explain

    def run():
        register_all_modules(init_default_scope=True)
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        stages = [s['name'] for s in cfg.train_cfg.get('stages', [])]
        stage = args.stage or (stages[-1] if stages else None)
        if stage is None:
            raise UserInputError(f'{args.config}: no train_cfg.stages; '
                                 'name the stage with --stage.')
        if args.batches < 1:
            raise UserInputError(
                f'--batches must be >= 1, got {args.batches}')
        torch.manual_seed(args.seed)
        model = MODELS.build(cfg.model)
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        logger='silent')
        loader = Runner.build_dataloader(
            cfg.train_dataloader, seed=args.seed)
        model.switch_stage(stage)
        if hasattr(model, 'prepare_stage_data'):
            model.prepare_stage_data(stage, loader.dataset)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]

        def batches():
            for i, batch in enumerate(loader):
                if i >= args.batches:
                    return
                yield batch

        table = grad_shares(model, batches(), params)
        print(f'{osp.basename(args.config)}, {args.checkpoint}, stage '
              f'"{stage}", {args.batches} batches:')
        print(markdown(table))
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(table, f, indent=1)
        return table

    return run_or_explain(run)


if __name__ == '__main__':
    sys.exit(0 if main() is not None else 1)
