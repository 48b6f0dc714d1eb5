# Copyright (c) mmvireid contributors. All rights reserved.
"""Ranking-list drawing: a query and its top-k gallery matches in one row."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mmvireid.registry import VISUALIZERS
from mmvireid.structures import MODALITY_LABELS

__all__ = ['VIReIDVisualizer', 'RankingLayout', 'GridLayout']

ImageLike = Union[str, np.ndarray]

#: Frame colours (RGB): query, correct match, wrong match, unknown identity.
DEFAULT_COLORS = dict(
    query=(30, 110, 220),
    correct=(0, 170, 0),
    wrong=(220, 20, 20),
    unknown=(140, 140, 140))


class RankingLayout:
    """Pixel geometry of a ranking row; all boxes are ``(x0, y0, x1, y1)``
    with exclusive ends, frames included.

    Row layout (``g`` = ``gap``, ``b`` = ``border``, ``s`` = ``3 * gap``
    between the query and the first match)::

        g [b query b] s [b #1 b] g [b #2 b] ... g [b #k b] g

    Height: ``g + b + tile_h + b + text_height + g``. The text band under
    each frame holds two lines (rank and score, modality/camera/identity).

    Args:
        num_gallery (int): Number of gallery tiles ``k`` (>= 0).
        tile_size (tuple[int, int]): ``(height, width)`` of every image.
        border (int): Frame width in pixels.
        gap (int): Space between frames and around the row.
        text_height (int): Height of the text band under the frames.
    """

    def __init__(self, num_gallery: int, tile_size: Tuple[int, int],
                 border: int, gap: int, text_height: int) -> None:
        self.num_gallery = int(num_gallery)
        self.tile_h, self.tile_w = (int(v) for v in tile_size)
        self.border, self.gap = int(border), int(gap)
        self.text_height = int(text_height)
        frame_w = self.tile_w + 2 * self.border
        frame_h = self.tile_h + 2 * self.border
        x = self.gap
        self.frames: List[Tuple[int, int, int, int]] = []
        for i in range(self.num_gallery + 1):
            self.frames.append((x, self.gap, x + frame_w, self.gap + frame_h))
            x += frame_w + (3 * self.gap if i == 0 else self.gap)
        # the last step added one gap too many after the last frame
        self.width = x if self.num_gallery else x - 2 * self.gap
        self.height = self.gap + frame_h + self.text_height + self.gap

    @property
    def query_frame(self) -> Tuple[int, int, int, int]:
        return self.frames[0]

    @property
    def gallery_frames(self) -> List[Tuple[int, int, int, int]]:
        return self.frames[1:]

    def tile_box(self, i: int) -> Tuple[int, int, int, int]:
        """Image area inside frame ``i`` (0 = query)."""
        x0, y0, x1, y1 = self.frames[i]
        b = self.border
        return x0 + b, y0 + b, x1 - b, y1 - b

    def text_anchor(self, i: int) -> Tuple[float, float]:
        """Top-centre of the text band under frame ``i``."""
        x0, _, x1, y1 = self.frames[i]
        return (x0 + x1) / 2, y1 + 2


class GridLayout:
    """Pixel geometry of a grid of framed tiles (``browse_dataset.py``);
    boxes are ``(x0, y0, x1, y1)`` with exclusive ends, frames included.

    A title band of ``title_height`` on top, then ``len(row_lengths)`` rows;
    row ``r`` holds ``row_lengths[r]`` tiles from the left (rows may differ
    in length, e.g. a visible and an infrared pipeline of different
    lengths). Every tile is ``[b tile b]`` with a text band of
    ``text_height`` under it, ``gap`` around and between them::

        title
        g [b t b] g [b t b] g ...      row 0
          text      text
        g [b t b] g ...                row 1

    Args:
        row_lengths (Sequence[int]): Tiles per row (each >= 0).
        tile_size (tuple[int, int]): ``(height, width)`` of every image.
        border (int): Frame width in pixels.
        gap (int): Space between frames and around the grid.
        text_height (int): Height of the text band under each row.
        title_height (int): Height of the title band. Defaults to 0.
    """

    def __init__(self,
                 row_lengths: Sequence[int],
                 tile_size: Tuple[int, int],
                 border: int,
                 gap: int,
                 text_height: int,
                 title_height: int = 0) -> None:
        self.row_lengths = [int(n) for n in row_lengths]
        if not self.row_lengths or min(self.row_lengths) < 0:
            raise ValueError('GridLayout: row_lengths must list >= 1 rows of '
                             f'>= 0 tiles, got {row_lengths}.')
        self.tile_h, self.tile_w = (int(v) for v in tile_size)
        self.border, self.gap = int(border), int(gap)
        self.text_height, self.title_height = int(text_height), int(
            title_height)
        frame_w = self.tile_w + 2 * self.border
        frame_h = self.tile_h + 2 * self.border
        row_h = frame_h + self.text_height + self.gap
        self.frames: List[List[Tuple[int, int, int, int]]] = []
        for r, n in enumerate(self.row_lengths):
            y = self.title_height + self.gap + r * row_h
            self.frames.append([
                (self.gap + c * (frame_w + self.gap), y,
                 self.gap + c * (frame_w + self.gap) + frame_w, y + frame_h)
                for c in range(n)
            ])
        cols = max(self.row_lengths)
        self.width = self.gap + cols * (frame_w + self.gap) if cols else \
            2 * self.gap
        self.height = self.title_height + self.gap + len(
            self.row_lengths) * row_h

    @property
    def num_tiles(self) -> int:
        return sum(self.row_lengths)

    def tile_box(self, row: int, col: int) -> Tuple[int, int, int, int]:
        """Image area inside the frame of tile ``(row, col)``."""
        x0, y0, x1, y1 = self.frames[row][col]
        b = self.border
        return x0 + b, y0 + b, x1 - b, y1 - b

    def text_anchor(self, row: int, col: int) -> Tuple[float, float]:
        """Top-centre of the text band under tile ``(row, col)``."""
        x0, _, x1, y1 = self.frames[row][col]
        return (x0 + x1) / 2, y1 + 2


@VISUALIZERS.register_module()
class VIReIDVisualizer(Visualizer):
    """mmengine :class:`~mmengine.visualization.Visualizer` that draws
    ranking lists.

    One PNG per query: the query image in a blue frame, then its top-k
    gallery matches, each framed **green** (same identity as the query),
    **red** (another identity) or **grey** (identity unknown), with the
    rank, the similarity score and the modality / camera / identity written
    under it. Images of any size are resized to ``tile_size``.

    Frames are painted straight into the pixel array (exact colours and
    sizes, so the layout is testable); only the text goes through
    matplotlib (:meth:`draw_texts`). Like every mmengine visualizer,
    :meth:`add_ranking` also sends the drawing to the configured backends
    (``LocalVisBackend``, ``TensorboardVisBackend``, ``WandbVisBackend``).

    Args:
        name (str): Instance name. Defaults to 'visualizer'.
        image (np.ndarray, optional): Initial RGB image. Defaults to None.
        vis_backends (list[dict], optional): Backend configs.
        save_dir (str, optional): Where backends store their files.
        tile_size (tuple[int, int]): ``(height, width)`` of every tile.
            Defaults to (128, 64), the toy images' size; (288, 144) keeps
            the real datasets' test resolution.
        border (int): Frame width in pixels. Defaults to 4.
        gap (int): Space between tiles in pixels. Defaults to 6.
        text_height (int): Height of the text band. Defaults to 30.
        font_size (int): Text size in points. Defaults to 7.
        colors (dict, optional): Overrides of the RGB frame colours
            ``query``, ``correct``, ``wrong``, ``unknown``.
        **kwargs: Other :class:`~mmengine.visualization.Visualizer`
            arguments (``fig_save_cfg``, ``fig_show_cfg``).

    Example:
        >>> vis = VIReIDVisualizer(name='ranking')
        >>> img = vis.draw_ranking(
        ...     'query.jpg', ['g1.jpg', 'g2.jpg'],
        ...     query_meta=dict(pid=4, cam_id=3, modality='ir'),
        ...     gallery_meta=[dict(score=0.91, pid=4, correct=True),
        ...                   dict(score=0.85, pid=7, correct=False)])
        >>> img.shape  # (height, width, 3), RGB
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 tile_size: Sequence[int] = (128, 64),
                 border: int = 4,
                 gap: int = 6,
                 text_height: int = 30,
                 font_size: int = 7,
                 colors: Optional[Dict[str, Sequence[int]]] = None,
                 **kwargs) -> None:
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            **kwargs)
        if len(tile_size) != 2 or min(tile_size) < 8:
            raise ValueError('VIReIDVisualizer: tile_size must be (height, '
                             f'width) with both >= 8, got {tile_size}.')
        if border < 1 or gap < 0 or text_height < 0:
            raise ValueError(
                'VIReIDVisualizer: need border >= 1, gap >= 0 and '
                f'text_height >= 0, got border={border}, gap={gap}, '
                f'text_height={text_height}.')
        unknown = set(colors or {}) - set(DEFAULT_COLORS)
        if unknown:
            raise KeyError(f'VIReIDVisualizer: unknown colour keys '
                           f'{sorted(unknown)}; use {sorted(DEFAULT_COLORS)}')
        self.tile_size = (int(tile_size[0]), int(tile_size[1]))
        self.border = int(border)
        self.gap = int(gap)
        self.text_height = int(text_height)
        self.font_size = font_size
        self.colors = {
            k: tuple(int(c) for c in v)
            for k, v in {
                **DEFAULT_COLORS,
                **(colors or {})
            }.items()
        }

    # ------------------------------------------------------------------ #
    def layout(self, num_gallery: int) -> RankingLayout:
        """The geometry of a row with ``num_gallery`` matches."""
        return RankingLayout(num_gallery, self.tile_size, self.border,
                             self.gap, self.text_height)

    def _load(self, img: ImageLike) -> np.ndarray:
        """An RGB uint8 tile of ``tile_size`` from a path or an RGB array."""
        if isinstance(img, str):
            if not osp.isfile(img):
                raise FileNotFoundError(
                    f'VIReIDVisualizer: image "{img}" does not exist.')
            img = mmcv.imread(img, channel_order='rgb')
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('VIReIDVisualizer: images must be H x W or '
                             f'H x W x 3, got shape {img.shape}.')
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        h, w = self.tile_size
        return mmcv.imresize(img, (w, h), interpolation='bilinear')

    def _frame_color(self, meta: dict) -> Tuple[int, int, int]:
        correct = meta.get('correct')
        if correct is None:
            return self.colors['unknown']
        return self.colors['correct' if correct else 'wrong']

    @staticmethod
    def _describe(meta: dict) -> str:
        parts = []
        if meta.get('modality') is not None:
            parts.append(
                MODALITY_LABELS.get(meta['modality'], str(meta['modality'])))
        if meta.get('cam_id') is not None:
            parts.append(f'c{meta["cam_id"]}')
        if meta.get('pid') is not None:
            parts.append(f'id{meta["pid"]}')
        return ' '.join(parts)

    def draw_ranking(self,
                     query: ImageLike,
                     gallery: Sequence[ImageLike],
                     query_meta: Optional[dict] = None,
                     gallery_meta: Optional[Sequence[dict]] = None,
                     draw_text: bool = True) -> np.ndarray:
        """Draw one ranking row and return it.

        Args:
            query (str | np.ndarray): Query image path or RGB array.
            gallery (Sequence[str | np.ndarray]): The ranked gallery images,
                best first.
            query_meta (dict, optional): ``modality`` ('vis'/'ir'),
                ``cam_id``, ``pid`` of the query, all optional.
            gallery_meta (Sequence[dict], optional): One dict per gallery
                image with optional ``score``, ``correct`` (True / False /
                None), ``modality``, ``cam_id``, ``pid``.
            draw_text (bool): Write the text band. Defaults to True.

        Returns:
            np.ndarray: The RGB drawing, ``(layout.height, layout.width,
            3)`` uint8 (see :class:`RankingLayout`).
        """
        query_meta = dict(query_meta or {})
        gallery_meta = [dict(m) for m in (gallery_meta or [{}] * len(gallery))]
        if len(gallery_meta) != len(gallery):
            raise ValueError(
                f'VIReIDVisualizer.draw_ranking: {len(gallery)} gallery '
                f'images but {len(gallery_meta)} gallery_meta entries.')
        layout = self.layout(len(gallery))
        canvas = np.full((layout.height, layout.width, 3), 255, np.uint8)
        colors = [self.colors['query']
                  ] + [self._frame_color(m) for m in gallery_meta]
        for i, (img, color) in enumerate(zip([query, *gallery], colors)):
            x0, y0, x1, y1 = layout.frames[i]
            canvas[y0:y1, x0:x1] = color
            tx0, ty0, tx1, ty1 = layout.tile_box(i)
            canvas[ty0:ty1, tx0:tx1] = self._load(img)
        self.set_image(canvas)
        if draw_text and self.text_height > 0:
            texts = ['query\n' + self._describe(query_meta)]
            for rank, meta in enumerate(gallery_meta, start=1):
                head = f'#{rank}'
                if meta.get('score') is not None:
                    head += f' {float(meta["score"]):.3f}'
                texts.append(head + '\n' + self._describe(meta))
            positions = np.array(
                [layout.text_anchor(i) for i in range(len(texts))])
            self.draw_texts(
                texts,
                positions,
                font_sizes=self.font_size,
                colors='black',
                vertical_alignments='top',
                horizontal_alignments='center')
        drawn = self.get_image()
        if drawn.shape[:2] != canvas.shape[:2]:
            # matplotlib may round the figure size by one pixel; the layout
            # is the contract, so crop / pad back to it.
            fixed = np.full_like(canvas, 255)
            h = min(drawn.shape[0], canvas.shape[0])
            w = min(drawn.shape[1], canvas.shape[1])
            fixed[:h, :w] = drawn[:h, :w]
            drawn = fixed
        return drawn

    def grid_layout(self,
                    row_lengths: Sequence[int],
                    title: bool = False) -> GridLayout:
        """The geometry of a grid with these row lengths."""
        return GridLayout(row_lengths, self.tile_size, self.border, self.gap,
                          self.text_height,
                          self.text_height // 2 + self.gap if title else 0)

    def draw_grid(self,
                  rows: Sequence[Sequence[ImageLike]],
                  labels: Optional[Sequence[Sequence[str]]] = None,
                  frame_colors: Optional[Sequence[Sequence[
                      Sequence[int]]]] = None,
                  title: Optional[str] = None) -> np.ndarray:
        """Draw rows of framed image tiles with a text band under each.

        Args:
            rows (Sequence[Sequence[str | np.ndarray]]): Images (paths or RGB
                arrays), row by row; rows may differ in length.
            labels (Sequence[Sequence[str]], optional): Text under each tile
                (two short lines fit), shaped like ``rows``.
            frame_colors (Sequence[Sequence[RGB]], optional): Frame colour of
                each tile, shaped like ``rows``. Defaults to the query
                colour.
            title (str, optional): One line above the grid.

        Returns:
            np.ndarray: The RGB drawing, ``(layout.height, layout.width,
            3)`` uint8 (see :class:`GridLayout`).
        """
        layout = self.grid_layout([len(r) for r in rows], title is not None)
        for name, table in (('labels', labels), ('frame_colors',
                                                 frame_colors)):
            if table is not None and [len(r) for r in table] != \
                    layout.row_lengths:
                raise ValueError(
                    f'VIReIDVisualizer.draw_grid: {name} must be shaped like '
                    f'rows ({layout.row_lengths} tiles per row), got '
                    f'{[len(r) for r in table]}.')
        canvas = np.full((layout.height, layout.width, 3), 255, np.uint8)
        for r, row in enumerate(rows):
            for c, img in enumerate(row):
                x0, y0, x1, y1 = layout.frames[r][c]
                canvas[y0:y1, x0:x1] = self.colors['query'] \
                    if frame_colors is None else tuple(frame_colors[r][c])
                tx0, ty0, tx1, ty1 = layout.tile_box(r, c)
                canvas[ty0:ty1, tx0:tx1] = self._load(img)
        self.set_image(canvas)
        texts, positions = [], []
        if labels is not None and self.text_height > 0:
            for r, row in enumerate(labels):
                for c, text in enumerate(row):
                    texts.append(text)
                    positions.append(layout.text_anchor(r, c))
        if title is not None:
            texts.append(title)
            positions.append((layout.gap, layout.gap / 2))
        if texts:
            n = len(texts) - (title is not None)
            self.draw_texts(
                texts,
                np.array(positions),
                font_sizes=self.font_size,
                colors='black',
                vertical_alignments='top',
                horizontal_alignments=['center'] * n + ['left'] *
                (title is not None))
        return self._fit(self.get_image(), canvas)

    @staticmethod
    def _fit(drawn: np.ndarray, canvas: np.ndarray) -> np.ndarray:
        """Crop / pad a drawing back to the canvas size (matplotlib may
        round the figure size by one pixel; the layout is the contract)."""
        if drawn.shape[:2] == canvas.shape[:2]:
            return drawn
        fixed = np.full_like(canvas, 255)
        h = min(drawn.shape[0], canvas.shape[0])
        w = min(drawn.shape[1], canvas.shape[1])
        fixed[:h, :w] = drawn[:h, :w]
        return fixed

    @master_only
    def add_ranking(self,
                    name: str,
                    query: ImageLike,
                    gallery: Sequence[ImageLike],
                    query_meta: Optional[dict] = None,
                    gallery_meta: Optional[Sequence[dict]] = None,
                    step: int = 0,
                    show: bool = False,
                    wait_time: float = 0,
                    out_file: Optional[str] = None,
                    to_backends: bool = True) -> np.ndarray:
        """Draw a ranking row, then show, save and/or log it.

        Args:
            name (str): Image name for the backends.
            query, gallery, query_meta, gallery_meta: See
                :meth:`draw_ranking`.
            step (int): Global step for the backends. Defaults to 0.
            show (bool): Open a window. Defaults to False.
            wait_time (float): Seconds to show it (0 = until closed).
            out_file (str, optional): Write the drawing to this PNG file.
            to_backends (bool): Also pass it to the visualizer's backends
                (:meth:`add_image`). Defaults to True.

        Returns:
            np.ndarray: The RGB drawing.
        """
        drawn = self.draw_ranking(query, gallery, query_meta, gallery_meta)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            out_dir = osp.dirname(osp.abspath(out_file))
            os.makedirs(out_dir, exist_ok=True)
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        if to_backends:
            self.add_image(name, drawn, step)
        return drawn
