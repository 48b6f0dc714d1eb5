# Copyright (c) mmvireid contributors. All rights reserved.
"""The ``WarmupMultiStepLR`` of the ReID references (CLIP-ReID, CSDN)."""
from bisect import bisect_right
from typing import Sequence

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmvireid.registry import PARAM_SCHEDULERS

__all__ = ['WarmupMultiStepLR', 'warmup_multistep_factor']


def warmup_multistep_factor(t: int, milestones: Sequence[int], gamma: float,
                            warmup_factor: float, warmup_iters: int) -> tuple:
    r"""``(warm-up factor, decay factor)`` of the references' ``WarmupMultiStepLR`` at step ``t``.

    :math:`w(t) \cdot \gamma^{k(t)}` with the linear warm-up
    :math:`w(t) = f (1 - t / T_w) + t / T_w` for :math:`t < T_w` (1 after)
    and :math:`k(t)` the number of milestones :math:`\le t`
    (``bisect_right``). They are returned apart because the reference
    computes ``base_lr * w * gamma**k`` left to right; doing the same gives
    bit-identical learning rates.
    """
    factor = 1
    if t < warmup_iters:
        alpha = t / warmup_iters
        factor = warmup_factor * (1 - alpha) + alpha
    return factor, gamma**bisect_right(list(milestones), t)


@PARAM_SCHEDULERS.register_module()
class WarmupMultiStepLR(LRSchedulerMixin, _ParamScheduler):
    """Linear warm-up then step decay, exactly as the references compute it.

    Written here because mmengine's ``LinearLR`` + ``MultiStepLR`` chain
    multiplies factors step by step: the rates agree only to float
    rounding, and the references' step timing needs an offset anyway.

    The references differ in when they step it:

    * CSDN calls ``step(epoch)`` with the 0-based epoch before each epoch:
      epoch ``i`` runs at ``t = i`` (``t_offset=0``).
    * CLIP-ReID builds it (torch's ``_LRScheduler.__init__`` steps once, to
      ``t = 0``) and calls ``step()`` before every epoch: epoch ``i``
      (0-based) runs at ``t = i + 1`` (``t_offset=1``). The first epoch
      therefore already runs at ``f + (1 - f) / T_w`` (x0.109 for f = 0.01,
      T_w = 10), and a milestone m takes effect in the m-th epoch, one epoch
      earlier than ``MultiStepLR(milestones=[m])``.

    Args:
        optimizer: Wrapped optimizer.
        milestones (list[int]): Steps ``t`` at which the rate is multiplied
            by ``gamma``.
        gamma (float): Decay factor. Defaults to 0.1.
        warmup_factor (float): Factor at ``t = 0``. Defaults to 0.01.
        warmup_iters (int): Warm-up length in steps. Defaults to 10.
        t_offset (int): Added to the scheduler's step count (see above).
            Defaults to 0.
    """

    def __init__(self,
                 optimizer,
                 milestones: Sequence[int],
                 gamma: float = 0.1,
                 warmup_factor: float = 0.01,
                 warmup_iters: int = 10,
                 t_offset: int = 0,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones):
            raise ValueError('WarmupMultiStepLR: milestones must be '
                             f'increasing, got {milestones}')
        if warmup_iters < 0:
            raise ValueError('WarmupMultiStepLR: warmup_iters must be >= 0, '
                             f'got {warmup_iters}')
        self.milestones = milestones
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.t_offset = t_offset
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def _get_value(self):
        warmup, decay = warmup_multistep_factor(
            self.last_step + self.t_offset, self.milestones, self.gamma,
            self.warmup_factor, self.warmup_iters)
        # base_lr * warmup * decay, left to right, as the reference
        return [base * warmup * decay for base in self.base_values]
