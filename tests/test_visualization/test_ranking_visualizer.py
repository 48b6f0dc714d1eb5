# Copyright (c) mmvireid contributors. All rights reserved.
"""Ranking-row drawing: exact size, frames, tiles, colours, saved PNG."""
import mmcv
import numpy as np
import pytest

from mmvireid.visualization import RankingLayout, VIReIDVisualizer

BLUE = (30, 110, 220)
GREEN = (0, 170, 0)
RED = (220, 20, 20)
GREY = (140, 140, 140)
WHITE = (255, 255, 255)


def _uniform(value, h=40, w=20):
    return np.full((h, w, 3), value, np.uint8)


def _colour_runs(row):
    """``[(start, end, rgb)]`` of the non-white runs of one pixel row."""
    runs, start = [], None
    for x in range(row.shape[0] + 1):
        inside = x < row.shape[0] and tuple(row[x]) != WHITE
        if inside and start is None:
            start = x
        elif not inside and start is not None:
            runs.append((start, x, tuple(row[start])))
            start = None
    return runs


def test_layout_by_hand():
    # g [b q b] 3g [b 1 b] g [b 2 b] g [b 3 b] g with tile 128x64, b=4, g=6
    lay = RankingLayout(3, (128, 64), border=4, gap=6, text_height=30)
    assert lay.width == 6 + 72 + 18 + 72 + 6 + 72 + 6 + 72 + 6 == 330
    assert lay.height == 6 + 136 + 30 + 6 == 178
    assert lay.frames == [(6, 6, 78, 142), (96, 6, 168, 142),
                          (174, 6, 246, 142), (252, 6, 324, 142)]
    assert lay.tile_box(1) == (100, 10, 164, 138)
    only_query = RankingLayout(0, (128, 64), 4, 6, 30)
    assert only_query.width == 6 + 72 + 6


@pytest.mark.parametrize('k', [1, 4])
def test_draw_ranking_tiles_and_frames(k):
    vis = VIReIDVisualizer(
        name=f'test_tiles_{k}', tile_size=(64, 32), border=3, gap=5)
    gallery = [_uniform(10 * (i + 1)) for i in range(k)]
    correct = [True, False, None, True][:k]
    metas = [
        dict(score=0.9 - 0.1 * i, pid=i, cam_id=1, modality='vis', correct=c)
        for i, c in enumerate(correct)
    ]
    img = vis.draw_ranking(
        _uniform(200), gallery, dict(pid=0, cam_id=3, modality='ir'), metas)
    lay = vis.layout(k)
    assert img.shape == (lay.height, lay.width, 3) and img.dtype == np.uint8
    # a row through the top frame edges: one run per tile, in order
    runs = _colour_runs(img[lay.gap + 1])
    expected = [BLUE] + [{
        True: GREEN,
        False: RED,
        None: GREY
    }[c] for c in correct]
    assert [r[2] for r in runs] == expected
    assert [(r[0], r[1]) for r in runs] == [(f[0], f[2]) for f in lay.frames]
    # each tile holds its (resized) image, untouched by the text
    for i, value in enumerate([200] + [10 * (j + 1) for j in range(k)]):
        x0, y0, x1, y1 = lay.tile_box(i)
        assert (img[y0:y1, x0:x1] == value).all()
    # text is written in the band under the frames, nowhere else
    band = img[lay.frames[0][3]:lay.height - lay.gap]
    assert (band != 255).any()


def test_no_text_leaves_band_white():
    vis = VIReIDVisualizer(name='test_no_text', tile_size=(32, 16))
    img = vis.draw_ranking(_uniform(0), [_uniform(0)], draw_text=False)
    lay = vis.layout(1)
    assert (img[lay.frames[0][3]:] == 255).all()


def test_add_ranking_writes_png(tmp_path):
    vis = VIReIDVisualizer(name='test_add_ranking', tile_size=(48, 24))
    src = tmp_path / 'q.png'
    mmcv.imwrite(_uniform(77), str(src))  # paths are read as RGB
    out = tmp_path / 'sub' / 'rank.png'
    drawn = vis.add_ranking(
        'r',
        str(src), [_uniform(5)] * 3,
        gallery_meta=[dict(correct=True)] * 3,
        out_file=str(out),
        to_backends=False)
    saved = mmcv.imread(str(out), channel_order='rgb')
    np.testing.assert_array_equal(saved, drawn)
    assert saved.shape[:2] == (vis.layout(3).height, vis.layout(3).width)


def test_errors(tmp_path):
    vis = VIReIDVisualizer(name='test_errors')
    with pytest.raises(ValueError, match='3 gallery images but 1'):
        vis.draw_ranking(_uniform(0), [_uniform(0)] * 3, gallery_meta=[{}])
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        vis.draw_ranking(str(tmp_path / 'missing.jpg'), [])
    with pytest.raises(KeyError, match="unknown colour keys \\['good'\\]"):
        VIReIDVisualizer(name='test_errors_2', colors=dict(good=(0, 0, 0)))
    with pytest.raises(ValueError, match='tile_size'):
        VIReIDVisualizer(name='test_errors_3', tile_size=(4, 4))
