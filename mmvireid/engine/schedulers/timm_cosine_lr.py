# Copyright (c) mmvireid contributors. All rights reserved.
"""timm's ``CosineLRScheduler`` as the CLIP-ReID and CSDN prompt stages use it."""
import math
from typing import Optional

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from mmvireid.registry import PARAM_SCHEDULERS

__all__ = ['TimmCosineLR', 'timm_cosine_value']


def timm_cosine_value(base: float, t: int, t_initial: int, lr_min: float,
                      warmup_t: int, warmup_lr_init: float) -> float:
    r"""Learning rate of timm's ``CosineLRScheduler`` (one cycle) at step t.

    * ``t < warmup_t``: :math:`w_0 + t (b - w_0) / T_w` (linear warm-up from
      the absolute ``warmup_lr_init``);
    * ``warmup_t <= t < t_initial``:
      :math:`l_{min} + \frac{1}{2}(b - l_{min})(1 + \cos(\pi t / T))` —
      note the cosine counts from 0, not from the end of the warm-up
      (``warmup_prefix=False``);
    * ``t >= t_initial``: ``lr_min`` (``cycle_limit=1``).
    """
    if t < warmup_t:
        # the step is computed first, as timm does: same rounding
        return warmup_lr_init + t * ((base - warmup_lr_init) / warmup_t)
    if t >= t_initial:
        return lr_min
    return lr_min + 0.5 * (base - lr_min) * (
        1 + math.cos(math.pi * t / t_initial))


@PARAM_SCHEDULERS.register_module()
class TimmCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Exact port of the timm cosine schedule used by the references.

    Written here because chaining mmengine's ``LinearLR`` and
    ``CosineAnnealingLR`` does not give the same numbers: timm's cosine is
    evaluated from step 0 even during warm-up, and warm-up starts from an
    absolute learning rate.

    The references step it with an explicit epoch: CLIP-ReID calls
    ``scheduler.step(epoch)`` with 1-based epochs (``t_offset=1``: the last
    epoch runs at ``lr_min``), CSDN with 0-based ones (``t_offset=0``).

    Args:
        optimizer: Wrapped optimizer.
        t_initial (int, optional): Cycle length in epochs. None in a stage
            of :class:`MultiStageTrainLoop` is the stage's length (the
            references' choice), filled in by the loop.
        lr_min (float): Final learning rate. Defaults to 1e-6.
        warmup_t (int): Warm-up epochs. Defaults to 5.
        warmup_lr_init (float): Learning rate at ``t = 0``. Defaults to 1e-5.
        t_offset (int): Added to the scheduler's step count. Defaults to 1.
    """

    def __init__(self,
                 optimizer,
                 t_initial: Optional[int] = None,
                 lr_min: float = 1e-6,
                 warmup_t: int = 5,
                 warmup_lr_init: float = 1e-5,
                 t_offset: int = 1,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if t_initial is None:
            raise ValueError(
                'TimmCosineLR: t_initial=None means "the stage length" and is '
                'filled in by MultiStageTrainLoop for stage-keyed schedulers '
                '(param_scheduler=dict(<stage>=[...])); give t_initial '
                'explicitly elsewhere')
        if warmup_t < 0 or t_initial <= 0:
            raise ValueError(f'TimmCosineLR: need t_initial > 0 and warmup_t '
                             f'>= 0, got {t_initial}, {warmup_t}')
        self.t_initial = t_initial
        self.lr_min = lr_min
        self.warmup_t = warmup_t
        self.warmup_lr_init = warmup_lr_init
        self.t_offset = t_offset
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def _get_value(self):
        t = self.last_step + self.t_offset
        return [
            timm_cosine_value(base, t, self.t_initial, self.lr_min,
                              self.warmup_t, self.warmup_lr_init)
            for base in self.base_values
        ]
