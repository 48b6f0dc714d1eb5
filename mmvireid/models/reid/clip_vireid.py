# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIP-VIReID: CLIP-ReID moved to two modalities
(docs/en/methods/clip_vireid.md)."""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvireid.registry import MODELS
from ..losses import WeightedLoss
from ..utils.device import to_device
from .base import BaseStagedReID

__all__ = ['CLIPVIReID']


@MODELS.register_module()
class CLIPVIReID(BaseStagedReID):
    """The CLIP-VIReID baseline, two stages.

    * ``prompt``: both encoders frozen; one set of ID-specific learnable
      tokens ("A photo of a X X X X person.") learns from cached image
      features of **both** modalities with SupCon(i2t) + SupCon(t2i)
      (CLIP-ReID stage 1).
    * ``finetune``: text features ``T [C, D]`` of all identities are computed
      once and frozen; the image encoder and BNNeck head train with
      ``w_id * (ID(f) + ID(v)) + w_tri * (Tri(m) + Tri(f) + Tri(v))
      + w_i2t * CE(v T^T)`` on both modalities, where ``f`` is the pooled
      backbone feature, ``v`` the projected feature and ``m`` the
      intermediate feature (RN50 layer3 pooled, ViT class token entering the
      last block), as in CLIP-ReID's code. Each weight ``w`` is the
      ``loss_weight`` of its loss config.

    Fine-tuning is split in two, so that methods built on this class reuse
    both parts: :meth:`train_features` computes the forward outputs
    (encoder features, head features and logits) and
    :meth:`id_triplet_losses` the ID, triplet and accuracy terms on them;
    :meth:`finetune_losses` adds the i2t term.

    Test (``extract_feat``): ``concat(f, v)`` before BN (CLIP-ReID
    ``NECK_FEAT='before'``) or ``concat(L2(BN(f)), L2(v))`` (CSDN), optionally
    with the h-flipped image's feature concatenated (CSDN flip test).

    Args:
        image_encoder (dict): e.g. ``CLIPImageEncoder``.
        text_encoder (dict): ``CLIPTextEncoder`` (always frozen).
        prompt_learner (dict): ``IDPromptLearner``; ``num_classes`` is filled
            in from this model's.
        head (dict): ``BNNeckHead``; ``in_channels`` and ``num_classes`` are
            filled in.
        num_classes (int): Number of training identities C.
        prompt_loss (dict): Loss between image and text features in the
            prompt stage. Defaults to SupConLoss.
        id_loss, triplet_loss (dict): Fine-tuning losses, summed over the
            branches (:meth:`id_triplet_losses`). The ID loss smooths labels
            with epsilon 0.1, as CLIP-ReID's ``CrossEntropyLabelSmooth``.
        i2t_loss (dict, optional): Image-to-text CE against ``T`` (epsilon
            0.1 too); None removes the term (a subclass with its own i2t
            terms passes None).
        loss_weights: Not accepted: a term's weight is the ``loss_weight``
            of its loss config. A config that still sets it gets a
            ``TypeError`` that names the loss configs to set instead.
        triplet_features (tuple[str]): Features the triplet loss is summed
            over, in order, from ``'mid'``, ``'feat'``, ``'proj'``. Defaults
            to all three (CLIP-ReID); ``('feat', 'proj')`` drops the
            intermediate one.
        cache_camera_embedding (bool): Add the camera embedding (ViT SIE)
            to the prompt stage's cached features. Defaults to False:
            CLIP-ReID extracts them without camera labels.
        test_feature (str): ``'before_bn'`` (CLIP-ReID) or ``'bn_l2'`` (CSDN).
        flip_test (bool): Concatenate the h-flipped image's feature.
        text_batch_size (int): Classes per text-encoder call when computing
            ``T``. Defaults to 64.
    """

    STAGES = ('prompt', 'finetune')
    #: Names ``triplet_features`` may use.
    TRIPLET_FEATURES = ('mid', 'feat', 'proj')
    #: How :meth:`id_triplet_losses` reports the branches: False, one
    #: ``loss_id`` and one ``loss_triplet``, each the weighted sum over the
    #: branches (CLIP-ReID); True, one term per branch (``loss_id``,
    #: ``loss_id_proj``, ``loss_triplet``, ``loss_triplet_proj``, ...), each
    #: weighted (CSDN).
    LOSS_PER_BRANCH = False
    #: Whether ``T`` (``class_text_feats``) is saved in checkpoints. Off:
    #: ``T`` follows from the prompts, and a resumed run recomputes it. A
    #: method whose ``T`` is a random draw (CSDN) must keep it.
    SAVE_CLASS_TEXT = False
    #: Key suffix of each branch's term with ``LOSS_PER_BRANCH``.
    _BRANCH_SUFFIX = dict(feat='', proj='_proj', mid='_mid')

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 prompt_learner: dict,
                 head: dict,
                 num_classes: int,
                 prompt_loss: dict = dict(type='SupConLoss'),
                 id_loss: dict = dict(type='LabelSmoothCELoss', epsilon=0.1),
                 triplet_loss: dict = dict(type='HardTripletLoss', margin=0.3),
                 i2t_loss: Optional[dict] = dict(
                     type='ImageTextCELoss', epsilon=0.1),
                 triplet_features: Sequence[str] = ('mid', 'feat', 'proj'),
                 cache_camera_embedding: bool = False,
                 test_feature: str = 'before_bn',
                 flip_test: bool = False,
                 text_batch_size: int = 64,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 loss_weights: Optional[Dict[str, float]] = None) -> None:
        if loss_weights is not None:
            raise TypeError(self._loss_weights_removed(loss_weights))
        if data_preprocessor is None:
            data_preprocessor = dict(type='VIReIDDataPreprocessor')
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if test_feature not in ('before_bn', 'bn_l2'):
            raise ValueError("test_feature must be 'before_bn' or 'bn_l2', "
                             f'got {test_feature!r}')
        triplet_features = tuple(triplet_features)
        if not triplet_features or not set(triplet_features) <= set(
                self.TRIPLET_FEATURES) or len(set(triplet_features)) != len(
                    triplet_features):
            raise ValueError(
                f'{type(self).__name__}: triplet_features must be distinct '
                f'names from {list(self.TRIPLET_FEATURES)}, got '
                f'{list(triplet_features)}')
        self.triplet_features = triplet_features
        self.cache_camera_embedding = cache_camera_embedding
        self.num_classes = num_classes
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        prompt_learner = copy.deepcopy(prompt_learner)
        prompt_learner.setdefault('num_classes', num_classes)
        self._build_prompt_learners(prompt_learner)
        head = copy.deepcopy(head)
        head.setdefault('num_classes', num_classes)
        head.setdefault('in_channels', [
            self.image_encoder.feat_dim, self.image_encoder.proj_dim
        ])
        self.head = MODELS.build(head)
        self.prompt_loss = MODELS.build(prompt_loss)
        self.id_loss = MODELS.build(id_loss)
        self.triplet_loss = MODELS.build(triplet_loss)
        self.i2t_loss = None if i2t_loss is None else MODELS.build(i2t_loss)
        self.test_feature = test_feature
        self.flip_test = flip_test
        self.text_batch_size = text_batch_size
        # T [C, D]: text features of all identities, computed when the
        # finetune stage starts (from the learned prompts). Unless
        # SAVE_CLASS_TEXT, it is not saved: a resumed run recomputes it from
        # the restored prompt learner.
        if self.SAVE_CLASS_TEXT:
            self.register_buffer(
                'class_text_feats',
                torch.zeros(num_classes, self.text_encoder.embed_dim))
        else:
            self.register_buffer('class_text_feats', None, persistent=False)

    @classmethod
    def _without_i2t_loss(cls, kwargs: dict) -> dict:
        """``kwargs`` for this class's ``__init__`` from a subclass with one
        i2t loss per modality (``i2t_vis_loss``, ``i2t_ir_loss``): the
        single ``i2t_loss`` is refused, as its settings would go unused
        (None passes, to drop one inherited from a base config)."""
        if kwargs.get('i2t_loss') is not None:
            raise TypeError(
                f'{cls.__name__} weighs the visible and infrared i2t terms '
                'apart: set i2t_vis_loss and i2t_ir_loss instead of '
                'i2t_loss (or i2t_loss=None to drop one inherited from a '
                'base config)')
        return dict(kwargs, i2t_loss=None)

    @classmethod
    def _loss_weights_removed(cls, loss_weights: dict) -> str:
        """The error message for a config that still sets ``loss_weights``:
        the term ``<key>`` is weighted by ``<key>_loss.loss_weight``."""
        items = dict(loss_weights).items()
        configs = ', '.join(f'{key}_loss=dict(..., loss_weight={value})'
                            for key, value in items)
        options = ' '.join(f'model.{key}_loss.loss_weight={value}'
                           for key, value in items)
        return (f'{cls.__name__}: `loss_weights` is no longer accepted; the '
                'weight of each loss term is the `loss_weight` of its loss '
                f'config. Instead of loss_weights={dict(loss_weights)} '
                f'write {configs} in the model config (on the command line: '
                f'--cfg-options {options}).')

    def _build_prompt_learners(self, cfg: dict) -> None:
        """Build the prompt learner(s) from ``cfg`` (``num_classes`` filled
        in); a method with several learners (CSDN) overrides it."""
        self.prompt_learner = MODELS.build(cfg)

    # ---------------------------------------------------------------- stage
    def _enter_stage(self, name: str) -> None:
        if name == 'finetune':
            self.class_text_feats = self.compute_class_text_features()

    @torch.no_grad()
    def compute_class_text_features(self) -> torch.Tensor:
        """``[C, D]`` text features of every identity's learned prompt."""
        return self.prompt_learner.all_class_features(
            self.text_encoder, batch_size=self.text_batch_size).detach()

    # ------------------------------------------------------------- features
    def image_features(self, inputs: torch.Tensor, data_samples,
                       **kwargs) -> tuple:
        """Run the image encoder: returns ``(feat, proj)`` (or what
        ``kwargs``, passed to :meth:`CLIPImageEncoder.forward`, ask for).

        Modality and camera ids go in as host tensors: the encoder checks
        them and splits the batch by modality there, without device syncs.
        """
        return self.image_encoder(
            inputs,
            modality=self.modalities_of(data_samples),
            cam_ids=self.cams_of(data_samples),
            **kwargs)

    def train_features(self,
                       inputs: torch.Tensor,
                       modalities: torch.Tensor,
                       cam_ids: Optional[torch.Tensor] = None) -> dict:
        """The forward outputs the fine-tuning losses read: encoder and head.

        Args:
            inputs (Tensor): Images ``[B, 3, H, W]``.
            modalities (Tensor): ``[B]`` modality ids, on the host (see
                :meth:`image_features`).
            cam_ids (Tensor, optional): ``[B]`` camera ids, on the host.

        Returns:
            dict: The :class:`BNNeckHead` output (``feats``, ``bn_feats``,
            ``logits``, one per branch ``[feat, proj]``) plus ``mid``: the
            intermediate feature ``[B, C_mid]``, or None when no loss uses
            it (it is then not computed).
        """
        if 'mid' in self.triplet_features:
            mid, feat, proj = self.image_encoder(
                inputs, modality=modalities, cam_ids=cam_ids, return_mid=True)
        else:
            mid = None
            feat, proj = self.image_encoder(
                inputs, modality=modalities, cam_ids=cam_ids)
        out = self.head([feat, proj])
        out['mid'] = mid
        return out

    def extract_cache_features(self, data: dict) -> torch.Tensor:
        """Projected image features ``v [B, D]`` for the prompt stage."""
        data = self.data_preprocessor(data, False)
        _, proj = self.image_features(
            data['inputs'],
            data['data_samples'],
            with_sie=self.cache_camera_embedding)
        return proj

    def _single_view_feat(self, inputs, data_samples) -> torch.Tensor:
        feat, proj = self.image_features(inputs, data_samples)
        out = self.head([feat, proj])
        if self.test_feature == 'before_bn':
            return torch.cat(out['feats'], dim=1)
        return torch.cat([F.normalize(f, dim=1) for f in
                          (out['bn_feats'][0], out['feats'][1])], dim=1)

    def extract_feat(self, inputs: torch.Tensor,
                     data_samples=None) -> torch.Tensor:
        """Retrieval feature ``[B, D_test]`` (doubled with ``flip_test``)."""
        feat = self._single_view_feat(inputs, data_samples)
        if self.flip_test:
            flipped = self._single_view_feat(inputs.flip(3), data_samples)
            feat = torch.cat([feat, flipped], dim=1)
        return feat

    # ---------------------------------------------------------------- losses
    def loss_prompt(self, inputs: torch.Tensor,
                    data_samples: dict) -> Dict[str, torch.Tensor]:
        """Prompt stage on cached features: ``inputs`` is ``v [B, D]``."""
        # Host labels for the losses (checked there for free), a device copy
        # for the prompt learner's lookup.
        labels = self.labels_of(data_samples)
        text = self.prompt_learner(
            to_device(labels, inputs.device), self.text_encoder)
        return dict(
            loss_supcon_i2t=self.prompt_loss(inputs, text, labels, labels),
            loss_supcon_t2i=self.prompt_loss(text, inputs, labels, labels))

    def loss_finetune(self, inputs: torch.Tensor,
                      data_samples: List) -> Dict[str, torch.Tensor]:
        """Fine-tuning on images of both modalities with frozen ``T``."""
        if self.class_text_feats is None:
            raise RuntimeError('class text features are missing: the '
                               'finetune stage was not entered through '
                               'switch_stage("finetune")')
        # host metadata (see mmvireid.models.utils.device)
        out = self.train_features(inputs, self.modalities_of(data_samples),
                                  self.cams_of(data_samples))
        return self.finetune_losses(out, data_samples)

    def finetune_losses(self, out: dict,
                        data_samples: List) -> Dict[str, torch.Tensor]:
        """The fine-tuning terms on the forward outputs: ID, triplet and
        accuracy (:meth:`id_triplet_losses`) and i2t against ``T``.

        Args:
            out (dict): :meth:`train_features` output.
            data_samples (list): The batch's data samples (host metadata).
        """
        labels = self.labels_of(data_samples)
        losses = self.id_triplet_losses(out, labels)
        if self.i2t_loss is not None:
            losses['loss_i2t'] = self.i2t_loss(out['feats'][1],
                                               self.class_text_feats, labels)
        return losses

    @staticmethod
    def _branch_sum(loss: nn.Module, inputs: List[torch.Tensor],
                    labels: torch.Tensor) -> torch.Tensor:
        """``loss`` of every input in ``inputs``, summed."""
        if isinstance(loss, WeightedLoss):
            return loss(inputs, labels)
        return sum(loss(x, labels) for x in inputs)

    def id_triplet_losses(self, out: dict,
                          labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """ID (on every branch's logits) + triplet (on the features named
        in ``triplet_features``, before BN) over both modalities, plus the
        ID accuracy of the first branch.

        With ``LOSS_PER_BRANCH`` each branch's term has its own key,
        otherwise a loss is summed over the branches (a
        :class:`~mmvireid.models.losses.WeightedLoss` applies its weight once
        to the sum; another loss module is called once per branch).

        Args:
            out (dict): :meth:`train_features` output.
            labels (Tensor): ``[B]`` train labels, on the host (the losses
                copy them to the device without blocking).

        Returns:
            dict: ``loss_id``, ``loss_triplet`` (or one ``loss_id<suffix>``
            and ``loss_triplet<suffix>`` per branch) and ``acc``.
        """
        named = dict(
            feat=out['feats'][0], proj=out['feats'][1], mid=out.get('mid'))
        logits = dict(zip(('feat', 'proj'), out['logits']))
        if self.LOSS_PER_BRANCH:
            losses = {
                f'loss_id{self._BRANCH_SUFFIX[name]}':
                self.id_loss(logit, labels)
                for name, logit in logits.items()
            }
            losses.update({
                f'loss_triplet{self._BRANCH_SUFFIX[name]}':
                self.triplet_loss(named[name], labels)
                for name in self.triplet_features
            })
        else:
            losses = dict(
                loss_id=self._branch_sum(self.id_loss, list(logits.values()),
                                         labels),
                loss_triplet=self._branch_sum(
                    self.triplet_loss,
                    [named[name] for name in self.triplet_features], labels))
        with torch.no_grad():
            first = out['logits'][0]
            losses['acc'] = (first.argmax(1) == to_device(
                labels, first.device)).float().mean()
        return losses
