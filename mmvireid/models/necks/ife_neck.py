# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIP4VI-ReID's infrared feature embedding (IFE) neck (our design,
docs/en/methods/clip4vireid.md)."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.registry import MODELS

__all__ = ['IFENeck']

_ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU}


@MODELS.register_module()
class IFENeck(BaseModule):
    r"""Residual MLP that maps infrared projected features toward the text
    space before the image-to-text loss.

    .. math::

        \mathrm{IFE}(v) = v + W_2\,\mathrm{drop}(\sigma(W_1\,\mathrm{LN}(v)))

    The text features ``T`` were learnt from *visible* images only (stage
    ``tsg``), so at the start of stage ``ife`` infrared features sit off the
    text space. The neck gives the infrared i2t term a small adapter of its
    own, so the shared image encoder does not have to absorb the whole
    modality gap through that one loss. It is a training-time module:
    retrieval uses the encoder's features, never the neck's output.

    With ``zero_init_last=True`` (default) the output layer starts at zero,
    so the neck starts as the identity and the first ``ife`` iterations see
    exactly the plain i2t loss; the pre-LayerNorm keeps the MLP input on one
    scale whatever the (unnormalised) CLIP feature norm is.

    Args:
        in_channels (int): Feature dimension D (1024 for CLIP RN50).
        hidden_channels (int, optional): Hidden width; None uses
            ``in_channels // 4``. Defaults to None.
        act (str): ``'relu'`` or ``'gelu'``. Defaults to 'relu'.
        dropout (float): Dropout on the hidden layer. Defaults to 0.0.
        pre_norm (bool): LayerNorm on the MLP input. Defaults to True.
        zero_init_last (bool): Zero-initialise the output layer so the neck
            starts as the identity. Defaults to True.
        init_cfg (dict | list[dict], optional): mmengine init config.

    Shape:
        - Input: ``[B, D]``.
        - Output: ``[B, D]``.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: Optional[int] = None,
                 act: str = 'relu',
                 dropout: float = 0.0,
                 pre_norm: bool = True,
                 zero_init_last: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels < 1:
            raise ValueError(
                f'IFENeck: in_channels must be >= 1, got {in_channels}')
        if hidden_channels is None:
            hidden_channels = max(in_channels // 4, 1)
        if hidden_channels < 1:
            raise ValueError('IFENeck: hidden_channels must be >= 1, got '
                             f'{hidden_channels}')
        if act not in _ACTIVATIONS:
            raise ValueError(f'IFENeck: act must be one of '
                             f'{sorted(_ACTIVATIONS)}, got {act!r}')
        if not 0 <= dropout < 1:
            raise ValueError(
                f'IFENeck: dropout must be in [0, 1), got {dropout}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.zero_init_last = zero_init_last
        self.norm = nn.LayerNorm(in_channels) if pre_norm else nn.Identity()
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.act = _ACTIVATIONS[act]()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_channels, in_channels)
        self._zero_last()

    def _zero_last(self) -> None:
        if self.zero_init_last:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def init_weights(self) -> None:
        """Run ``init_cfg``, then re-zero the output layer if
        ``zero_init_last`` (an ``init_cfg`` or a parent's initialiser must not
        break the identity start; set ``zero_init_last=False`` to keep what
        ``init_cfg`` writes there)."""
        super().init_weights()
        self._zero_last()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D] -> [B, D]``."""
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f'IFENeck expects features [B, '
                             f'{self.in_channels}], got {tuple(x.shape)}')
        return x + self.fc2(self.drop(self.act(self.fc1(self.norm(x)))))
