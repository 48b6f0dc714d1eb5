# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIP4VI-ReID: text semantic generation, infrared feature embedding and
high-level semantic alignment (our design from the abstract;
docs/en/methods/clip4vireid.md lists every choice)."""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from mmvireid.registry import MODELS
from mmvireid.structures import IR_ID, VIS_ID
from ..utils.device import to_device
from .clip_vireid import CLIPVIReID

__all__ = ['CLIP4VIReID']


@MODELS.register_module()
class CLIP4VIReID(CLIPVIReID):
    r"""CLIP4VI-ReID, three stages on a shared image encoder.

    * ``tsg`` (text semantic generation): both encoders frozen; the
      ID-specific prompt tokens learn from cached **visible** features only
      with SupCon(i2t) + SupCon(t2i) (the stage's ``feature_cache`` must keep
      ``modalities=['vis']``).
    * ``ife`` (infrared feature embedding): the text features ``T [C, D]`` of
      all identities are computed once from the prompts and frozen; the
      shared image encoder and BNNeck head train on both modalities with

      .. math::

          w_{id} \sum_{b} ID_b + w_{tri} \sum_{b} Tri_b
          + w_{i2t,vis} CE(v_{vis} T^\top)
          + w_{i2t,ir} CE(\mathrm{IFE}(v_{ir}) T^\top)

      over the branches ``b`` (pooled feature ``f``, projection ``v``), each
      weight ``w`` the ``loss_weight`` of its loss config (``id_loss``,
      ``triplet_loss``, ``i2t_vis_loss``, ``i2t_ir_loss``). The IFE neck (a
      residual MLP, ``ife_neck=None`` removes it) maps infrared features
      toward the text space before their i2t term only.
    * ``hsa`` (high-level semantic alignment): the prompts train again (small
      lr) together with the image encoder and head. Each step recomputes,
      with gradients, the text features ``T_B [P, D]`` of the ``P``
      identities in the batch only, and adds to ID + triplet

      .. math::

          w_{t2i}\,SupCon(T_B \to [v_{vis}; v_{ir}])
          + w_{align} \frac{1}{P}\sum_y D(q^{vis}_y, q^{ir}_y)

      where :math:`q^m_y` is the mean over identity ``y``'s images of
      modality ``m`` of :math:`\mathrm{softmax}(v T_B^\top / \tau)` and
      ``D`` the KL of :class:`CrossModalAlignmentLoss` (``align_loss=None``
      removes the term); the weights are the ``loss_weight`` of
      ``supcon_t2i_loss`` and ``align_loss``. The IFE neck is not used here:
      HSA aligns the encoder's own features, which retrieval uses.

    The text encoder is frozen throughout; retrieval (``extract_feat``) is
    image-only and the same as :class:`CLIPVIReID`'s.

    Args:
        ife_neck (dict, optional): The IFE neck, e.g. ``dict(type='IFENeck')``;
            ``in_channels`` is filled in with the projection width. None
            replaces it by ``nn.Identity`` (the module name stays, so the
            ``ife`` optimiser config needs no change). Defaults to
            ``dict(type='IFENeck')``.
        align_loss (dict, optional): The HSA cross-modal alignment loss;
            None removes the term. Defaults to
            ``dict(type='CrossModalAlignmentLoss')``.
        i2t_vis_loss (dict): i2t CE of the visible features against ``T``
            in ``ife``. Defaults to ``dict(type='ImageTextCELoss')``.
        i2t_ir_loss (dict): i2t CE of the IFE-mapped infrared features;
            weighted 2 by default (the infrared term weighted up, as CSDN's
            0.10 vs 0.05). Being two terms, they replace the base's
            ``i2t_loss``, which this class refuses.
        supcon_t2i_loss (dict): SupCon(t2i) of ``hsa``. Defaults to
            ``dict(type='SupConLoss')``. (``prompt_loss``, a
            :class:`CLIPVIReID` argument, is stage ``tsg``'s SupCon in both
            directions.)
        **kwargs: :class:`CLIPVIReID` arguments (encoders, prompt learner,
            head, ``num_classes``, ``prompt_loss``, ``id_loss``,
            ``triplet_loss``, test feature, ...).
    """

    STAGES = ('tsg', 'ife', 'hsa')

    def __init__(self,
                 ife_neck: Optional[dict] = dict(type='IFENeck'),
                 align_loss: Optional[dict] = dict(
                     type='CrossModalAlignmentLoss'),
                 i2t_vis_loss: dict = dict(type='ImageTextCELoss'),
                 i2t_ir_loss: dict = dict(
                     type='ImageTextCELoss', loss_weight=2.0),
                 supcon_t2i_loss: dict = dict(type='SupConLoss'),
                 **kwargs) -> None:
        super().__init__(**self._without_i2t_loss(kwargs))
        if ife_neck is None:
            # Keep the attribute a module, so optim_wrapper.ife.modules may
            # list 'ife_neck' whether the neck is on or off.
            self.ife_neck = nn.Identity()
        else:
            ife_neck = copy.deepcopy(ife_neck)
            ife_neck.setdefault('in_channels', self.image_encoder.proj_dim)
            self.ife_neck = MODELS.build(ife_neck)
        self.align_loss = None if align_loss is None else MODELS.build(
            align_loss)
        self.i2t_vis_loss = MODELS.build(i2t_vis_loss)
        self.i2t_ir_loss = MODELS.build(i2t_ir_loss)
        self.supcon_t2i_loss = MODELS.build(supcon_t2i_loss)

    @property
    def with_ife_neck(self) -> bool:
        """Whether the IFE neck is on (False when ``ife_neck=None``)."""
        return not isinstance(self.ife_neck, nn.Identity)

    # ---------------------------------------------------------------- stage
    def _enter_stage(self, name: str) -> None:
        if name == 'ife':
            # Frozen for the whole stage; recomputed from the (restored)
            # prompts when a run resumes inside it.
            self.class_text_feats = self.compute_class_text_features()
        else:
            # tsg trains the prompts; hsa recomputes the batch's text every
            # step. A stale bank must not survive into either.
            self.class_text_feats = None

    # ---------------------------------------------------------------- losses
    def loss_tsg(self, inputs: torch.Tensor,
                 data_samples: dict) -> Dict[str, torch.Tensor]:
        """Prompt learning on cached visible features ``inputs [B, D]``."""
        mods = self.modalities_of(data_samples)
        num_ir = int((mods != VIS_ID).sum())
        if num_ir:
            raise ValueError(
                f'CLIP4VIReID stage "tsg" learns text from visible features '
                f'only, but the cached batch holds {num_ir} infrared '
                'feature(s); set feature_cache=dict(..., modalities=["vis"]) '
                'for the tsg stage in train_cfg.stages')
        return self.loss_prompt(inputs, data_samples)

    def _i2t(self, loss: nn.Module, feats: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        """i2t ``loss`` against the frozen ``T``; 0 for an empty selection
        (a batch without one modality) instead of the NaN of an empty
        mean."""
        if feats.size(0) == 0:
            return feats.new_zeros(())
        return loss(feats, self.class_text_feats, labels)

    def loss_ife(self, inputs: torch.Tensor,
                 data_samples: List) -> Dict[str, torch.Tensor]:
        """Shared-encoder training on images of both modalities, ``T``
        frozen; infrared i2t through the IFE neck and weighted up."""
        if self.class_text_feats is None:
            raise RuntimeError('class text features are missing: the ife '
                               'stage was not entered through '
                               'switch_stage("ife")')
        # host labels / modalities: the split by modality costs no sync
        labels = self.labels_of(data_samples)
        mods = self.modalities_of(data_samples)
        out = self.train_features(inputs, mods, self.cams_of(data_samples))
        losses = self.id_triplet_losses(out, labels)
        v = out['feats'][1]
        vis = torch.nonzero(mods == VIS_ID).squeeze(1)
        ir = torch.nonzero(mods == IR_ID).squeeze(1)
        vis_d, ir_d = to_device(vis, v.device), to_device(ir, v.device)
        losses['loss_i2t_vis'] = self._i2t(self.i2t_vis_loss, v[vis_d],
                                           labels[vis])
        losses['loss_i2t_ir'] = self._i2t(self.i2t_ir_loss,
                                          self.ife_neck(v[ir_d]), labels[ir])
        return losses

    def batch_text_features(self, labels: torch.Tensor) -> tuple:
        """Text features of the batch's identities, with gradients.

        Only the ``P`` distinct labels go through the text encoder: a
        P x K x 2 batch needs P text passes, not 2PK (one per image) and not
        C (all identities). With the same number of images per identity,
        SupCon(t2i) over the P unique texts equals CLIP-ReID's per-sample
        form, whose duplicated text rows only repeat identical terms.

        Returns:
            tuple[Tensor, Tensor]: ``T_B [P, D]`` and the sorted identities
            ``[P]`` they belong to, on the device of ``labels`` (host labels
            keep ``unique`` off the device: it would sync).
        """
        ids = torch.unique(labels)
        text = self.prompt_learner(
            to_device(ids, self.prompt_learner.cls_ctx.device),
            self.text_encoder)
        return text, ids

    def loss_hsa(self, inputs: torch.Tensor,
                 data_samples: List) -> Dict[str, torch.Tensor]:
        """Prompts and image encoder together: SupCon(t2i) over both
        modalities + visible/IR alignment over the text space + ID +
        triplet."""
        # host labels / modalities (see mmvireid.models.utils.device)
        labels = self.labels_of(data_samples)
        mods = self.modalities_of(data_samples)
        out = self.train_features(inputs, mods, self.cams_of(data_samples))
        losses = self.id_triplet_losses(out, labels)
        v = out['feats'][1]
        text, ids = self.batch_text_features(labels)
        losses['loss_supcon_t2i'] = self.supcon_t2i_loss(text, v, ids, labels)
        if self.align_loss is not None:
            losses['loss_align'] = self.align_loss(v, text, labels, mods)
        return losses
