# Copyright (c) mmvireid contributors. All rights reserved.
"""Resizing of grid positional embeddings (ViT tokens, ResNet attention pool).

CLIP checkpoints are trained on square 224x224 images (a 14x14 ViT grid or a
7x7 RN50 attention-pool grid). Person images are tall (e.g. 288x144), so the
grid part of the positional embedding is interpolated to the new grid while
the extra (CLS / mean-token) rows are kept as they are, as CLIP-ReID does.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ['resize_grid_pos_embed', 'infer_pos_embed_grid']


def _to_hw(grid: Sequence[int], name: str) -> Tuple[int, int]:
    if isinstance(grid, int):
        return grid, grid
    grid = tuple(int(g) for g in grid)
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f'{name} must be a positive (h, w) pair, got {grid}')
    return grid


def infer_pos_embed_grid(
        num_grid_tokens: int,
        ref_grid: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """Guess the (h, w) layout of ``num_grid_tokens`` positional embeddings.

    A state dict stores the grid flattened, so its shape alone does not say
    whether 162 tokens are 18x9 or 27x6. A perfect square is taken as square
    (every public CLIP checkpoint). Otherwise the factorisation whose aspect
    ratio is closest to ``ref_grid``'s (the grid of the model being loaded,
    e.g. a 288x144 checkpoint loaded into a 256x128 model) is used.

    Args:
        num_grid_tokens (int): Number of grid tokens (extra tokens removed).
        ref_grid (tuple[int, int], optional): Grid whose aspect ratio breaks
            the tie for non-square token counts.

    Returns:
        tuple[int, int]: The grid as (h, w).
    """
    if num_grid_tokens < 1:
        raise ValueError(
            f'cannot infer a grid from {num_grid_tokens} grid tokens')
    side = math.isqrt(num_grid_tokens)
    if side * side == num_grid_tokens:
        return side, side
    if ref_grid is None:
        raise ValueError(
            f'{num_grid_tokens} grid tokens do not form a square grid and no '
            'reference grid was given to infer its (h, w) layout')
    ref_h, ref_w = _to_hw(ref_grid, 'ref_grid')
    target = math.log(ref_h / ref_w)
    candidates = [(h, num_grid_tokens // h)
                  for h in range(1, num_grid_tokens + 1)
                  if num_grid_tokens % h == 0]
    return min(
        candidates, key=lambda hw: abs(math.log(hw[0] / hw[1]) - target))


def resize_grid_pos_embed(pos_embed: torch.Tensor,
                          src_grid: Sequence[int],
                          dst_grid: Sequence[int],
                          num_extra_tokens: int = 1,
                          mode: str = 'bilinear',
                          antialias: bool = False) -> torch.Tensor:
    """Interpolate the grid part of a positional embedding to a new grid.

    The default (``bilinear``, ``align_corners=False``, no antialias) equals
    CLIP-ReID's ``resize_pos_embed`` for both the ViT embedding and the RN50
    attention-pool embedding; open_clip uses bicubic with antialias when it
    resizes a ViT grid, which can be selected with ``mode``/``antialias``.

    Args:
        pos_embed (Tensor): ``[num_extra_tokens + h_src * w_src, C]``; the
            extra tokens (CLS for ViT, the mean token for the attention pool)
            come first and are copied unchanged.
        src_grid (tuple[int, int]): (h, w) of the grid stored in ``pos_embed``.
        dst_grid (tuple[int, int]): (h, w) of the wanted grid.
        num_extra_tokens (int): Number of leading non-grid tokens.
        mode (str): ``F.interpolate`` mode ('bilinear', 'bicubic', ...).
        antialias (bool): ``F.interpolate`` antialias flag.

    Returns:
        Tensor: ``[num_extra_tokens + h_dst * w_dst, C]`` with the dtype and
        device of ``pos_embed``.
    """
    src_h, src_w = _to_hw(src_grid, 'src_grid')
    dst_h, dst_w = _to_hw(dst_grid, 'dst_grid')
    if pos_embed.dim() != 2:
        raise ValueError('pos_embed must be [tokens, channels], got shape '
                         f'{tuple(pos_embed.shape)}')
    if pos_embed.shape[0] != num_extra_tokens + src_h * src_w:
        raise ValueError(
            f'pos_embed has {pos_embed.shape[0]} tokens, which is not '
            f'{num_extra_tokens} extra + {src_h}x{src_w} grid tokens')
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed.clone()
    extra = pos_embed[:num_extra_tokens]
    grid = pos_embed[num_extra_tokens:]
    dtype = pos_embed.dtype
    # [h*w, C] -> [1, C, h, w]; interpolate in fp32 because OpenAI weights
    # come partly in fp16, which CPU interpolation kernels do not all take.
    grid = grid.float().reshape(1, src_h, src_w, -1).permute(0, 3, 1, 2)
    align = False if mode in ('linear', 'bilinear', 'bicubic',
                              'trilinear') else None
    grid = F.interpolate(
        grid,
        size=(dst_h, dst_w),
        mode=mode,
        align_corners=align,
        antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(dst_h * dst_w, -1).to(dtype)
    return torch.cat([extra, grid], dim=0)
