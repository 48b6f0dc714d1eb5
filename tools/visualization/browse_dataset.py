# Copyright (c) mmvireid contributors. All rights reserved.
"""Save grids of what the data pipeline feeds the model, as mmpretrain's
``browse_dataset.py``.

    python tools/visualization/browse_dataset.py CONFIG --output-dir DIR \\
        [--phase train|val|test] [--mode original|transformed|pipeline] \\
        [--show-number N] [--cfg-options k=v ...]

* ``--phase train`` (default): one PNG per step of the train sampler,
  ``train_step<i>.png``: the P x K visible images above their aligned
  infrared partners (position j above position j, as the losses pair
  them), after ChannelExchange / ChannelAdapGray / random erasing; a third
  row shows CSDN's second visible view. Labels: modality, camera, train
  label and the person id of the path.
* ``--phase test|val``: ``<phase>_<i>.png``, 16 consecutive samples each.
* ``--mode pipeline``: the image after every transform, one PNG per aligned
  pair (train) or per sample (test).

Drawn with mmvireid's :class:`VIReIDVisualizer` (an mmengine
``Visualizer``); see :mod:`mmvireid.visualization.dataset_browser`.
"""
import argparse
import os
import os.path as osp
import sys

import mmcv
from mmengine.config import DictAction
from mmengine.runner import set_random_seed

from mmvireid.utils import register_all_modules
from mmvireid.utils.preflight import load_config
from mmvireid.utils.tool_utils import (UserInputError, check_writable,
                                       run_or_explain)
from mmvireid.visualization import VIReIDVisualizer
from mmvireid.visualization.dataset_browser import (MODES, PHASES,
                                                    DatasetBrowser,
                                                    build_browse_dataset,
                                                    sampler_steps)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Save grids of the images a dataset pipeline gives')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--output-dir', '-o', required=True, help='folder for the PNGs')
    parser.add_argument(
        '--phase',
        '-p',
        default='train',
        choices=PHASES,
        help='which dataloader to browse (default: train)')
    parser.add_argument(
        '--mode',
        '-m',
        default='transformed',
        choices=MODES,
        help='original: as loaded; transformed: after the pipeline '
        '(default); pipeline: after every transform')
    parser.add_argument(
        '--show-number',
        '-n',
        type=int,
        default=3,
        help='grids to write: sampler steps (train), aligned pairs of the '
        'first step (train, pipeline mode), or groups of samples (test)')
    parser.add_argument(
        '--tile-size',
        type=int,
        nargs=2,
        default=(128, 64),
        metavar=('H', 'W'),
        help='size every image is drawn at')
    parser.add_argument(
        '--seed',
        type=int,
        default=None,
        help='seed of the sampler and the random transforms (default: '
        'randomness.seed of the config, else 0)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)

    def browse():
        if args.show_number < 1:
            raise UserInputError(
                f'--show-number must be >= 1, got {args.show_number}')
        check_writable(args.output_dir, '--output-dir', is_dir=True)
        cfg = load_config(args.config, args.cfg_options)
        seed = args.seed if args.seed is not None else \
            (cfg.get('randomness') or {}).get('seed') or 0
        set_random_seed(seed)
        try:
            dataset = build_browse_dataset(cfg, args.phase)
        except (FileNotFoundError, ValueError, KeyError) as e:
            msg = e.args[0] if e.args and isinstance(e.args[0], str) \
                else str(e)
            raise UserInputError(f'{args.phase}_dataloader.dataset: {msg}')
        visualizer = VIReIDVisualizer(
            name='browse_dataset', tile_size=tuple(args.tile_size))
        browser = DatasetBrowser(dataset, visualizer, args.mode)
        os.makedirs(args.output_dir, exist_ok=True)
        written = []
        if args.phase == 'train':
            pipeline_pairs = args.mode == 'pipeline'
            steps, pk = sampler_steps(
                cfg, dataset, 1 if pipeline_pairs else args.show_number, seed)
            if not steps:
                raise UserInputError(
                    'train_dataloader: the sampler gave no complete step on '
                    f'{len(dataset)} samples.')
            for i, indices in enumerate(steps):
                if pipeline_pairs and pk is not None:
                    half = len(indices) // 2
                    n = min(args.show_number, half)
                    indices = indices[:n] + indices[half:half + n]
                grids = browser.step_grid(indices, pk, f'train step {i}')
                for suffix, img in grids.items():
                    written.append(
                        osp.join(args.output_dir,
                                 f'train_step{i:03d}{suffix}.png'))
                    mmcv.imwrite(mmcv.rgb2bgr(img), written[-1])
        else:
            per_grid = 1 if args.mode == 'pipeline' else 16
            for i in range(args.show_number):
                indices = list(
                    range(i * per_grid, min((i + 1) * per_grid, len(dataset))))
                if not indices:
                    break
                img = browser.sample_grid(
                    indices, f'{args.phase} samples {indices[0]}-'
                    f'{indices[-1]} ({args.mode})')
                written.append(
                    osp.join(args.output_dir, f'{args.phase}_{i:03d}.png'))
                mmcv.imwrite(mmcv.rgb2bgr(img), written[-1])
        for path in written:
            print(path)
        print(f'{len(written)} grid(s) written to {args.output_dir}')

    run_or_explain(browse)


if __name__ == '__main__':
    main(sys.argv[1:])
