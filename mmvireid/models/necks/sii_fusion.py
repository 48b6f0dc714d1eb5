# Copyright (c) mmvireid contributors. All rights reserved.
"""CSDN's Semantic Information Integration (SII): fuse the visible and the
infrared text feature of an identity."""
import math

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.registry import MODELS

__all__ = ['SIIFusion']


def _projection(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``Linear -> Tanh -> Dropout``, one of the q / k / v embeddings."""
    return nn.Sequential(
        nn.Linear(in_dim, out_dim), nn.Tanh(), nn.Dropout(dropout))


@MODELS.register_module()
class SIIFusion(BaseModule):
    r"""Fuse the visible text feature with the infrared one (CSDN's
    ``AttentionFusion``).

    Computed as the public CSDN code does:

    .. math::

        q &= \mathrm{Drop}(\tanh(W_q t_{vis} + b_q)), \quad
        k = \mathrm{Drop}(\tanh(W_k t_{ir} + b_k)), \quad
        v = \mathrm{Drop}(\tanh(W_v t_{ir} + b_v)) \\
        a &= \mathrm{softmax}\big(q k^\top / \sqrt{d_{qkv}}\big), \qquad
        \hat t = t_{vis} + W_c (a\, v) + b_c

    With ``key_tokens='ir'`` (the reference) the keys and values are the
    single infrared token, so the attention runs over a **length-1
    sequence**: the softmax is exactly 1 and the output is
    :math:`t_{vis} + W_c\,v(t_{ir}) + b_c`, a residual MLP on the infrared
    text. ``q`` and ``k`` are still computed (and receive zero gradients)
    so that the parameters, the dropout draws and the optimiser state
    (e.g. Adam's weight decay acting on the q/k weights) are those of the
    reference, and its checkpoints map one to one:
    ``embedding_{q,k,v}.0.{weight,bias}`` and ``embedding_common.0.*``.

    ``key_tokens='vis_ir'`` is an extension (not in CSDN): the keys and
    values are the two tokens ``[t_vis, t_ir]``, so the query weighs the
    visible and the infrared text with a real two-way softmax. It has the
    same parameters.

    Args:
        embed_dim (int): Text feature dimension D (1024 for CLIP RN50).
        qkv_dim (int, optional): Dimension of q, k and v. Defaults to
            ``embed_dim`` (as CSDN).
        dropout (float): Dropout after each q/k/v projection. Defaults to
            0.1.
        key_tokens (str): ``'ir'`` (CSDN) or ``'vis_ir'``. Defaults to
            ``'ir'``.
        init_cfg (dict, optional): mmengine init config. Defaults to None
            (PyTorch's ``nn.Linear`` initialisation, as CSDN).
    """

    KEY_TOKENS = ('ir', 'vis_ir')

    def __init__(self,
                 embed_dim: int,
                 qkv_dim: int = None,
                 dropout: float = 0.1,
                 key_tokens: str = 'ir',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if key_tokens not in self.KEY_TOKENS:
            raise ValueError(f'SIIFusion: key_tokens must be one of '
                             f'{self.KEY_TOKENS}, got {key_tokens!r}')
        if embed_dim < 1 or (qkv_dim is not None and qkv_dim < 1):
            raise ValueError('SIIFusion: embed_dim and qkv_dim must be >= 1, '
                             f'got {embed_dim} and {qkv_dim}')
        if not 0 <= dropout < 1:
            raise ValueError(
                f'SIIFusion: dropout must be in [0, 1), got {dropout}')
        self.embed_dim = int(embed_dim)
        self.qkv_dim = int(qkv_dim or embed_dim)
        self.key_tokens = key_tokens
        self.embedding_q = _projection(self.embed_dim, self.qkv_dim, dropout)
        self.embedding_k = _projection(self.embed_dim, self.qkv_dim, dropout)
        self.embedding_v = _projection(self.embed_dim, self.qkv_dim, dropout)
        self.embedding_common = nn.Sequential(
            nn.Linear(self.qkv_dim, self.embed_dim))

    def attention(self, q: torch.Tensor, k: torch.Tensor,
                  v: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention, ``[B, 1, d]`` queries over
        ``[B, L, d]`` keys/values; the softmax runs over the ``L`` keys."""
        weights = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(self.qkv_dim)
        # CSDN normalises over dim 1 (the single query); with one query and
        # one key that equals the key axis used here: both give exactly 1.
        return torch.softmax(weights, dim=-1).bmm(v)

    def forward(self, text_vis: torch.Tensor,
                text_ir: torch.Tensor) -> torch.Tensor:
        """Fuse the two text features of each identity.

        Args:
            text_vis (Tensor): ``[B, D]`` visible-prompt text features.
            text_ir (Tensor): ``[B, D]`` infrared-prompt text features of the
                same identities.

        Returns:
            Tensor: ``[B, D]`` fused text features.
        """
        if text_vis.shape != text_ir.shape or text_vis.dim() != 2 or \
                text_vis.shape[1] != self.embed_dim:
            raise ValueError(
                f'SIIFusion expects two [B, {self.embed_dim}] text features, '
                f'got {tuple(text_vis.shape)} and {tuple(text_ir.shape)}')
        if self.key_tokens == 'ir':
            tokens = text_ir.unsqueeze(1)  # [B, 1, D]
        else:
            tokens = torch.stack([text_vis, text_ir], dim=1)  # [B, 2, D]
        q = self.embedding_q(text_vis.unsqueeze(1))  # [B, 1, d]
        k = self.embedding_k(tokens)  # [B, L, d]
        v = self.embedding_v(tokens)
        fused = self.embedding_common(self.attention(q, k, v))  # [B, 1, D]
        return fused.squeeze(1) + text_vis

    def extra_repr(self) -> str:
        return (f'embed_dim={self.embed_dim}, qkv_dim={self.qkv_dim}, '
                f'key_tokens={self.key_tokens!r}')
