# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/visualization/browse_dataset.py: one grid per sampler step, the
visible images above their aligned infrared partners."""
import importlib.util
import os
import os.path as osp

import mmcv
import pytest

from mmvireid.visualization import GridLayout
from mmvireid.visualization.dataset_browser import MODALITY_COLORS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'browse_dataset',
        osp.join(REPO_ROOT, 'tools', 'visualization', 'browse_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _layout(row_lengths):
    # the tool's visualizer: tiles 128x64, border 4, gap 6, text 30, title
    return GridLayout(row_lengths, (128, 64), 4, 6, 30, 30 // 2 + 6)


def _frame_colours(img, layout):
    """The colour of the left edge of every frame, row by row (RGB)."""
    rows = []
    for frames in layout.frames:
        rows.append([
            tuple(int(v) for v in img[(y0 + y1) // 2, x0 + 1])
            for x0, y0, x1, y1 in frames
        ])
    return rows


def _browse(config, root, out_dir, *extra):
    options = [
        f'{name}.dataset.data_root={root}'
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    tool.main([
        osp.join(REPO_ROOT, 'configs', config), '--output-dir',
        str(out_dir), *extra, '--cfg-options', *options
    ])
    return sorted(os.listdir(out_dir))


def test_train_grid_is_one_sampler_step(toy_sysu_root, tmp_path, capsys):
    files = _browse('clip_vireid_toy.py', toy_sysu_root, tmp_path / 'train',
                    '-n', '2')
    assert files == ['train_step000.png', 'train_step001.png']
    out = capsys.readouterr().out
    assert '2 grid(s) written to' in out
    # P=4 ids x K=4: 16 visible tiles above their 16 infrared partners
    layout = _layout([16, 16])
    img = mmcv.imread(str(tmp_path / 'train' / files[0]), channel_order='rgb')
    assert img.shape == (layout.height, layout.width, 3)
    vis, ir = _frame_colours(img, layout)
    assert vis == [MODALITY_COLORS['vis']] * 16
    assert ir == [MODALITY_COLORS['ir']] * 16


def test_csdn_second_view_and_pipeline_mode(toy_sysu_root, tmp_path):
    # CSDN: a third row with the second visible view (img_view2)
    files = _browse('csdn_toy.py', toy_sysu_root, tmp_path / 'csdn', '-n', '1')
    img = mmcv.imread(str(tmp_path / 'csdn' / files[0]), channel_order='rgb')
    layout = _layout([16, 16, 16])
    assert img.shape == (layout.height, layout.width, 3)
    assert _frame_colours(img, layout)[2] == [MODALITY_COLORS['vis']] * 16
    # pipeline mode: one grid per aligned pair, a tile per transform (the
    # visible and infrared sub-pipelines of ModalityDispatch opened up)
    files = _browse('clip_vireid_toy.py', toy_sysu_root, tmp_path / 'pipe',
                    '--mode', 'pipeline', '-n', '2')
    assert files == ['train_step000_pair00.png', 'train_step000_pair01.png']
    img = mmcv.imread(str(tmp_path / 'pipe' / files[0]), channel_order='rgb')
    # vis: load, resize, crop, flip, erasing; ir: the same + AdapGray
    layout = _layout([5, 6])
    assert img.shape == (layout.height, layout.width, 3)
    assert _frame_colours(img, layout) == [[MODALITY_COLORS['vis']] * 5,
                                           [MODALITY_COLORS['ir']] * 6]


def test_test_phase_and_errors(toy_sysu_root, tmp_path, capsys):
    files = _browse('clip_vireid_toy.py', toy_sysu_root, tmp_path / 'test',
                    '--phase', 'test', '--mode', 'original', '-n', '1')
    assert files == ['test_000.png']
    img = mmcv.imread(str(tmp_path / 'test' / files[0]), channel_order='rgb')
    layout = _layout([8, 8])
    assert img.shape == (layout.height, layout.width, 3)
    # a missing dataset: one message naming the dataset key and the path
    with pytest.raises(SystemExit) as exc:
        _browse('clip_vireid_toy.py', str(tmp_path / 'nowhere'),
                tmp_path / 'none')
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'train_dataloader.dataset' in err and 'nowhere' in err
