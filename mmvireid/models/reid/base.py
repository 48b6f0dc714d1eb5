# Copyright (c) mmvireid contributors. All rights reserved.
"""The stage core every VI-ReID method builds on."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from ..data_preprocessors import cam_tensor, modality_tensor
from ..utils.device import to_device
from ..wrappers import current_optim_wrapper, update_params_or_skip

__all__ = ['BaseStagedReID']


class BaseStagedReID(BaseModel):
    """Base class of staged VI-ReID models.

    A method subclasses it, lists its stage names in ``STAGES`` and writes one
    ``loss_<stage>(inputs, data_samples)`` per stage. The rest is shared:

    * ``switch_stage(name)`` (called by :class:`StageSwitchHook`) validates the
      name, runs the subclass's ``_enter_stage(name)`` and records
      ``current_stage``; it is idempotent.
    * ``train_step`` uses the optim wrapper of the current stage when the
      config builds one per stage (:class:`StageOptimWrapperConstructor`).
    * ``forward(mode='loss')`` dispatches to ``loss_<current_stage>``;
      ``mode='predict'`` returns data samples carrying ``pred_feat``.
    """

    STAGES: Sequence[str] = ()

    def __init__(self, data_preprocessor=None, init_cfg=None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.current_stage: Optional[str] = None

    # ---------------------------------------------------------------- stage
    def switch_stage(self, name: str) -> None:
        """Enter stage ``name`` (no-op if it is already the current stage)."""
        if name not in self.STAGES:
            raise KeyError(f'{type(self).__name__} has no stage "{name}"; '
                           f'its stages are {list(self.STAGES)}')
        if name == self.current_stage:
            return
        self._enter_stage(name)
        self.current_stage = name

    def _enter_stage(self, name: str) -> None:
        """Prepare stage ``name``; override to build stage inputs."""

    # ----------------------------------------------------------------- step
    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        ow = current_optim_wrapper(self, optim_wrapper)
        with ow.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        update_params_or_skip(self, ow, parsed_losses, log_vars)
        return log_vars

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[Union[list, dict]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            if self.current_stage is None:
                raise RuntimeError(
                    f'{type(self).__name__}: no current stage. Training needs '
                    'StageSwitchHook in custom_hooks, or call '
                    'model.switch_stage(name) first.')
            loss_fn = getattr(self, f'loss_{self.current_stage}')
            return loss_fn(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}"; use loss, predict or '
                           'tensor')

    # -------------------------------------------------------------- helpers
    # Data samples stay on the host (VIReIDDataPreprocessor moves only the
    # inputs), so these return host tensors: the models validate them and
    # build index structures from them there, and copy to the device with
    # ``to_device`` only what the device needs (mmvireid.models.utils.device).
    @staticmethod
    def labels_of(data_samples) -> torch.Tensor:
        """``[B]`` labels of a list of DataSample or a dict of tensors, on
        the samples' device (the host after the data preprocessor)."""
        if isinstance(data_samples, dict):
            return data_samples['gt_label']
        return torch.cat([s.gt_label for s in data_samples])

    @staticmethod
    def modalities_of(data_samples, device=None) -> torch.Tensor:
        """``[B]`` modality ids (0 visible, 1 infrared): on the host, or
        copied to ``device`` without blocking when it is given."""
        if isinstance(data_samples, dict):
            mods = data_samples['modality']
            return mods if device is None else to_device(mods, device)
        return modality_tensor(data_samples, device)

    @staticmethod
    def cams_of(data_samples, device=None) -> Optional[torch.Tensor]:
        """``[B]`` camera ids or None: on the host, or copied to ``device``
        without blocking when it is given."""
        if isinstance(data_samples, dict):
            cams = data_samples.get('cam_id')
            return cams if device is None or cams is None else to_device(
                cams, device)
        return cam_tensor(data_samples, device)

    def extract_feat(self, inputs: torch.Tensor,
                     data_samples=None) -> torch.Tensor:
        """Retrieval features ``[B, D]`` (override)."""
        raise NotImplementedError

    def extract_cache_features(self, data: dict) -> torch.Tensor:
        """Features cached for prompt stages ``[B, D]`` (override)."""
        raise NotImplementedError

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List] = None) -> List:
        """Return ``data_samples`` with ``pred_feat`` (L2-normalised ``[D]``)."""
        feats = F.normalize(self.extract_feat(inputs, data_samples), dim=1)
        if data_samples is None:
            from mmpretrain.structures import DataSample
            data_samples = [DataSample() for _ in range(len(feats))]
        for sample, feat in zip(data_samples, feats):
            sample.set_field(feat, 'pred_feat', field_type='data')
        return data_samples
