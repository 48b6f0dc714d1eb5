# Copyright (c) mmvireid contributors. All rights reserved.
from typing import Dict, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmvireid.registry import MODELS

__all__ = ['BNNeckHead', 'GeMPooling']


class GeMPooling(nn.Module):
    r"""Generalized-mean pooling with a learnable exponent.

    :math:`f = (\frac{1}{HW}\sum x^p)^{1/p}` with ``x`` clamped to ``eps``.
    Written here rather than taken from mmpretrain because CSDN's variant has
    no clamp on ``p`` (mmpretrain's clamps it to >= 1), and we port CSDN.

    Args:
        p (float): Initial exponent. Defaults to 3 (CSDN).
        eps (float): Clamp value. Defaults to 1e-6.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C]``."""
        x = x.clamp(min=self.eps).pow(self.p)
        return F.adaptive_avg_pool2d(x, 1).pow(1.0 / self.p).flatten(1)


def _per_branch(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f'BNNeckHead: {name} has {len(value)} entries '
                             f'for {n} branches')
        return list(value)
    return [value] * n


@MODELS.register_module()
class BNNeckHead(BaseModule):
    """BNNeck on several feature branches: pool -> BN -> linear classifier.

    CLIP-ReID uses two branches (backbone feature and projected feature),
    each with ``BatchNorm1d`` whose bias is frozen and a bias-free classifier
    initialised N(0, 0.001); CSDN uses GeM on the RN50 map and a trainable BN
    bias. Every such choice is a (per-branch) argument.

    Args:
        in_channels (sequence of int): Channels of each branch.
        num_classes (int): Number of training identities C.
        pool (str or None): ``'avg'`` or ``'gem'`` for 4-D inputs; ignored for
            2-D inputs. Defaults to 'avg'.
        bn_bias_trainable (bool or list[bool]): Defaults to False.
        classifier_bias (bool or list[bool]): Defaults to False.
        classifier_std (float): Std of the classifier init. Defaults to 0.001.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 pool: str = 'avg',
                 bn_bias_trainable: Union[bool, List[bool]] = False,
                 classifier_bias: Union[bool, List[bool]] = False,
                 classifier_std: float = 0.001,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        n = len(in_channels)
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        self.classifier_std = classifier_std
        if pool == 'gem':
            self.pool = GeMPooling()
        elif pool == 'avg':
            self.pool = nn.AdaptiveAvgPool2d(1)
        else:
            raise ValueError(f"BNNeckHead: pool must be 'avg' or 'gem', got "
                             f'{pool!r}')
        self.bns = nn.ModuleList()
        self.classifiers = nn.ModuleList()
        bias_trainable = _per_branch(bn_bias_trainable, n, 'bn_bias_trainable')
        cls_bias = _per_branch(classifier_bias, n, 'classifier_bias')
        for c, train_bias, has_bias in zip(in_channels, bias_trainable,
                                           cls_bias):
            bn = nn.BatchNorm1d(c)
            bn.bias.requires_grad_(train_bias)
            self.bns.append(bn)
            self.classifiers.append(nn.Linear(c, num_classes, bias=has_bias))
        self._reset()

    def _reset(self) -> None:
        for bn in self.bns:
            nn.init.constant_(bn.weight, 1.0)
            nn.init.constant_(bn.bias, 0.0)
        for fc in self.classifiers:
            nn.init.normal_(fc.weight, std=self.classifier_std)
            if fc.bias is not None:
                nn.init.constant_(fc.bias, 0.0)

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            self._reset()

    def pool_features(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Pool 4-D branch inputs to ``[B, C]``; 2-D inputs pass through."""
        return [
            (self.pool(f).flatten(1) if f.dim() == 4 else f) for f in feats
        ]

    def forward(self, feats: Sequence[torch.Tensor]) -> Dict[str, list]:
        """Args: feats: one tensor per branch, ``[B, C]`` or ``[B, C, H, W]``.

        Returns:
            dict: ``feats`` (pooled ``[B, C_i]``), ``bn_feats`` (``[B, C_i]``)
            and ``logits`` (``[B, num_classes]``), one entry per branch.
        """
        if len(feats) != len(self.bns):
            raise ValueError(f'BNNeckHead expects {len(self.bns)} branches, '
                             f'got {len(feats)}')
        pooled = self.pool_features(feats)
        bn_feats = [bn(f) for bn, f in zip(self.bns, pooled)]
        logits = [fc(f) for fc, f in zip(self.classifiers, bn_feats)]
        return dict(feats=pooled, bn_feats=bn_feats, logits=logits)
