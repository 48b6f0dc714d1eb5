# Copyright (c) mmvireid contributors. All rights reserved.
"""FLOPs and parameters of a model's image and text encoders, as
mmpretrain's ``get_flops.py``, through mmengine's complexity analysis.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] \\
        [--show-table] [--cfg-options k=v ...]

* Image encoder: one image at the config's input size
  (``model.image_encoder.input_size``, or ``--shape H W``, which builds the
  encoder for that size), the path of every training and test image.
* Text encoder: one prompt as the model feeds it (the prompt learner's
  template, cut after its end-of-text token), and the class text features of
  all identities, computed once at the start of each stage that uses them.
* The stage plan: what each stage trains, and whether it caches the image
  features (the image encoder then runs once per train image at the stage
  start instead of every iteration).

A FLOP is one fused multiply-add (mmengine / fvcore convention). Only the
encoders are counted; the heads and losses are a few matrix products on top.
The model is built without loading pretrained weights (the counts do not
depend on them, and nothing is downloaded).
"""
import argparse
import sys

from mmengine.config import DictAction

from mmvireid.utils import register_all_modules
from mmvireid.utils.preflight import load_config
from mmvireid.utils.tool_utils import UserInputError, run_or_explain


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='FLOPs and parameters of the image and text encoders')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size; the encoder is built for it (default: '
        'model.image_encoder.input_size)')
    parser.add_argument(
        '--show-table',
        action='store_true',
        help='print mmengine\'s per-module table too')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def _size(n: float) -> str:
    """FLOPs as mmengine prints them (``4.084M``, ``8.317G``)."""
    from mmengine.analysis.print_helper import _format_size
    return _format_size(int(n))


def _params(n: int) -> str:
    """Parameters in millions, as papers give them."""
    return f'{n / 1e6:.3f}M ({n:,})'


def main(argv=None) -> None:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)

    def analyse():
        from mmvireid.apis import init_model
        from mmvireid.apis.inferencer import _drop_pretrained
        from mmvireid.utils.complexity import encoder_complexity
        from mmvireid.utils.stage_summary import stage_summary
        cfg = load_config(args.config, args.cfg_options)
        if 'model' not in cfg:
            raise UserInputError(f'{args.config}: the config has no "model".')
        _drop_pretrained(cfg.model)
        if args.shape is not None:
            # the positional embeddings (ViT grid, RN attention pool) are
            # sized for the input: build the encoder for this one
            encoder_cfg = cfg.model.get('image_encoder')
            if encoder_cfg is None or 'input_size' not in encoder_cfg and \
                    'CLIPImageEncoder' not in str(encoder_cfg.get('type')):
                raise UserInputError(f'--shape: {args.config} has no '
                                     'model.image_encoder.input_size to set.')
            encoder_cfg['input_size'] = tuple(args.shape)
        model = init_model(cfg)
        try:
            result = encoder_complexity(model, None, args.show_table)
        except ValueError as e:
            raise UserInputError(f'{args.config}: {e}') from e
        img = result['image']
        encoder = model.image_encoder
        lines = [
            f'Config: {args.config}',
            f'Image encoder ({type(encoder).__name__}), input '
            f'{"x".join(str(v) for v in img["input_shape"])}:',
            f'  FLOPs: {_size(img["flops"])} per image '
            f'({img["flops"]:,})',
            f'  Params: {_params(img["params"])}' +
            (f'; {_params(img["params_used"])} on one image\'s path (one '
             'of the two stems)' if img['params_used'] != img['params'] else
             ''),
        ]
        text = result['text']
        if text is not None:
            classes = result['num_classes']
            lines += [
                f'Text encoder ({type(model.text_encoder).__name__}), one '
                f'prompt of {text["num_tokens"]} tokens:',
                f'  FLOPs: {_size(text["flops"])} per prompt '
                f'({text["flops"]:,})',
            ]
            if classes:
                lines.append(
                    f'  all {classes} identities\' prompts (class text '
                    'features, once per stage that uses them): '
                    f'{_size(classes * text["flops"])}')
            lines.append(f'  Params: {_params(text["params"])}')
        lines.append(f'Whole model: {_params(result["model_params"])} '
                     'params')
        if (cfg.get('train_cfg') or {}).get('stages'):
            lines.append('Stages:')
            for row in stage_summary(cfg):
                trains = ', '.join(row['modules']) if row['modules'] else \
                    'all parameters'
                cached = 'cached image features (the image encoder runs ' \
                    'once per train image at the stage start)' \
                    if not row['feature_cache'].startswith('none') else \
                    'images (the image encoder runs every iteration)'
                lines.append(f'  {row["name"]} ({row["epochs"]} epochs): '
                             f'trains {trains}; input: {cached}')
        if args.show_table:
            lines += ['', 'Image encoder:', img['table']]
            if text is not None:
                lines += ['', 'Text encoder:', text['table']]
        lines.append('A FLOP is one multiply-add (mmengine.analysis); only '
                     'the encoders are counted.')
        print('\n'.join(lines))

    run_or_explain(analyse)


if __name__ == '__main__':
    main(sys.argv[1:])
