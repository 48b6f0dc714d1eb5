# Copyright (c) mmvireid contributors. All rights reserved.
"""CSDN: modality-specific prompts, semantic fusion (SII) and high-level
semantic embedding (HSE), ported from the public code (nengdong96/CSDN)."""
import copy
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.dist import broadcast

from mmvireid.registry import MODELS
from mmvireid.structures import IR_ID, VIS_ID
from ..utils.device import to_device
from .clip_vireid import CLIPVIReID

__all__ = ['CSDN']


def _image_to_tensor(img) -> torch.Tensor:
    """``H x W (x C)`` array (as loaded, e.g. BGR uint8) -> ``C x H x W``
    tensor with the dtype kept, like :class:`PackVIReIDInputs` packs the
    first view."""
    if isinstance(img, torch.Tensor):
        return img
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError('CSDN: a second view must be an H x W (x C) image, '
                         f'got an array of shape {img.shape}')
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def drop_stem_inner_relus(image_encoder: nn.Module) -> None:
    """Remove the ReLUs after ``bn1`` and ``bn2`` of a CLIP ResNet stem.

    CSDN builds each stem as ``Sequential(conv1, bn1, conv2, bn2, conv3,
    bn3, relu, avgpool)`` from CLIP's modules, so only the last of CLIP's
    three stem ReLUs is applied (visible and infrared stems alike). Here
    ``act1``/``act2`` of the visible stem (``visual``) and of the infrared
    copy (``ir_stem``) become identities; no parameter changes, so
    checkpoints are unaffected. A ViT encoder has no such stem: nothing to
    do.
    """
    if getattr(image_encoder, 'arch_type', None) != 'resnet':
        return
    stems = [image_encoder.visual]
    if getattr(image_encoder, 'ir_stem', None) is not None:
        stems.append(image_encoder.ir_stem)
    for stem in stems:
        stem.act1 = nn.Identity()
        stem.act2 = nn.Identity()


@MODELS.register_module()
class CSDN(CLIPVIReID):
    """CSDN (Yu et al.), three stages as the public code trains them.

    * ``prompt``: two ID prompt learners with the same template, one for
      visible (``prompt_learner_vis``) and one for infrared
      (``prompt_learner_ir``) images, learn from cached image features with
      SupCon(i2t) + SupCon(t2i). Each feature is matched with the text of its
      own modality's learner. With the paired feature cache
      (``feature_cache=dict(mode='paired')``) a batch is ``[B visible; B
      infrared]`` features whose position ``j`` share the identity, as in
      CSDN.
    * ``fusion`` (SII): the visible and infrared text of each label are
      fused by :class:`SIIFusion` (``t_vis + W_c v(t_ir)``); only the fusion
      trains, with the same SupCon pair on cached features of both
      modalities. The prompt learners are not trained here, so their text is
      computed without gradients (the reference computes gradients for them
      that no optimiser ever applies).
    * ``finetune`` (HSE): the fused text features ``T [C, D]`` of all
      identities are computed once and frozen. Images of both modalities go
      through their own stem and the shared body; the visible images come
      with a second, channel-exchanged view (see below). Losses, with ``f``
      the GeM-pooled backbone feature and ``v`` the projected feature::

          ID(f) + ID(v) + MSEL(f) + MSEL(v) + 0.15 Tri(f) + 0.15 Tri(v)
              + 0.05 CE(v_vis T^T) + 0.10 CE(v_ir T^T)

      each term under its own key (``LOSS_PER_BRANCH``), each weight the
      ``loss_weight`` of its loss config (``--lambda1/2/3`` of the public
      code: ``triplet_loss``, ``i2t_vis_loss``, ``i2t_ir_loss``). ID and
      triplet (WRT) use all images (both visible views and infrared), through
      :meth:`~CLIPVIReID.id_triplet_losses`; i2t uses the first visible view
      and the infrared images; MSEL uses ``[first visible view; infrared]``,
      which needs the aligned P x K layout of
      :class:`CrossModalIdentitySampler`.

    **Second visible view.** The train pipeline stores an independently
    augmented copy of each visible image under ``second_view_key`` (e.g. an
    ``mmcv`` ``KeyMapper`` running crop / flip / erasing /
    ``ChannelExchange(gray=2)`` and writing ``img_view2``), packed into the
    data sample by ``PackVIReIDInputs(algorithm_keys=['img_view2'])``. The
    model normalises these views with its data preprocessor and appends
    them to the batch (same label, modality and camera as their sample), so
    the stems and BatchNorms see ``[visible view 1, visible view 2]`` and the
    infrared images together, as in CSDN. Without second views the model
    trains on the first views only.

    Test: ``concat(L2(BN(GeM f)), L2(v))`` (``test_feature='bn_l2'``) of the
    image and, with ``flip_test``, of its horizontal flip; infrared images
    use the infrared stem. The 2024-07 release of CSDN had neither the flip
    test nor MSEL: ``flip_test=False, msel_loss=None``.

    Quirks of the public code kept here, each with a switch:

    * ``stem_inner_relu=False``: CSDN's stems apply only the last of the
      three ReLUs of CLIP's ResNet stem (:func:`drop_stem_inner_relus`).
    * ``train_mode_cache_stages=('fusion',)``: the reference extracts the
      fusion-stage features with the model left in train mode by stage 1,
      so its BatchNorms use the statistics of each batch (one modality, one
      identity-sampler step at a time). The running statistics are restored
      afterwards (the reference updates them, but fine-tuning keeps
      BatchNorm in train mode for a whole epoch before its first
      evaluation, which forgets them); a resumed run is then exact.
    * ``class_text_dropout=True``: ``T`` is computed with the fusion's
      dropout active (the model is still in train mode in the reference).
      ``T`` is stored in checkpoints (``class_text_feats``), so a run resumed
      during fine-tuning keeps the same draw.

    Args:
        fusion (dict): ``SIIFusion`` config; ``embed_dim`` defaults to the
            text encoder's output dimension.
        i2t_vis_loss (dict): ``ImageTextCELoss`` of the visible images
            against ``T``; CSDN weighs it 0.05.
        i2t_ir_loss (dict): The same for the infrared images; CSDN weighs
            it 0.10. (Being two terms, they replace the base's
            ``i2t_loss``, which CSDN refuses.)
        msel_loss (dict, optional): ``MSELLoss``; None disables it (the
            2024-07 release).
        head, id_loss, triplet_loss, triplet_features, test_feature,
            flip_test: :class:`CLIPVIReID` arguments with CSDN's defaults:
            GeM + BNNeck with trainable BN bias and bias-free classifiers,
            plain cross entropy, WRT triplet weighted 0.15 on ``f`` and
            ``v``, ``'bn_l2'`` test feature with the flip test.
        second_view_key (str, optional): Data-sample field of the second
            visible view. Defaults to 'img_view2'.
        stem_inner_relu (bool): Keep all three stem ReLUs (CLIP) instead of
            only the last (CSDN). Defaults to False.
        train_mode_cache_stages (Sequence[str]): Stages whose feature cache
            is extracted with the image encoder's BatchNorms in train mode.
            Defaults to ``('fusion',)``.
        class_text_dropout (bool): Compute ``T`` with the fusion's dropout
            active. Defaults to True.
        **kwargs: The other :class:`CLIPVIReID` arguments (encoders, prompt
            learner, ``num_classes``, ``prompt_loss``, ...).
    """

    STAGES = ('prompt', 'fusion', 'finetune')
    LOSS_PER_BRANCH = True
    # T is drawn with the fusion's dropout active: a resumed run must not
    # redraw it.
    SAVE_CLASS_TEXT = True

    def __init__(self,
                 fusion: dict = dict(type='SIIFusion'),
                 i2t_vis_loss: dict = dict(
                     type='ImageTextCELoss', loss_weight=0.05),
                 i2t_ir_loss: dict = dict(
                     type='ImageTextCELoss', loss_weight=0.10),
                 msel_loss: Optional[dict] = dict(type='MSELLoss', num_pos=4),
                 head: dict = dict(
                     type='BNNeckHead',
                     pool='gem',
                     bn_bias_trainable=True,
                     classifier_bias=False),
                 id_loss: dict = dict(type='LabelSmoothCELoss', epsilon=0.0),
                 triplet_loss: dict = dict(
                     type='WRTTripletLoss', loss_weight=0.15),
                 triplet_features: Sequence[str] = ('feat', 'proj'),
                 test_feature: str = 'bn_l2',
                 flip_test: bool = True,
                 second_view_key: Optional[str] = 'img_view2',
                 stem_inner_relu: bool = False,
                 train_mode_cache_stages: Sequence[str] = ('fusion', ),
                 class_text_dropout: bool = True,
                 **kwargs) -> None:
        super().__init__(
            head=head,
            id_loss=id_loss,
            triplet_loss=triplet_loss,
            triplet_features=triplet_features,
            test_feature=test_feature,
            flip_test=flip_test,
            **self._without_i2t_loss(kwargs))
        unknown = set(train_mode_cache_stages) - set(self.STAGES)
        if unknown:
            raise ValueError(
                f'CSDN: train_mode_cache_stages names unknown stages '
                f'{sorted(unknown)}; the stages are {list(self.STAGES)}')
        fusion = copy.deepcopy(fusion)
        fusion.setdefault('embed_dim', self.text_encoder.embed_dim)
        self.fusion = MODELS.build(fusion)
        self.i2t_vis_loss = MODELS.build(i2t_vis_loss)
        self.i2t_ir_loss = MODELS.build(i2t_ir_loss)
        self.msel_loss = None if msel_loss is None else MODELS.build(msel_loss)
        self.second_view_key = second_view_key
        self.stem_inner_relu = stem_inner_relu
        if not stem_inner_relu:
            drop_stem_inner_relus(self.image_encoder)
        self.train_mode_cache_stages = tuple(train_mode_cache_stages)
        self.class_text_dropout = class_text_dropout
        # ``class_text_feats`` (T, saved: SAVE_CLASS_TEXT) holds the draw of
        # the current prompt learners and fusion when ``class_text_ready``.
        self.register_buffer('class_text_ready',
                             torch.zeros((), dtype=torch.bool))
        # Host mirror of ``class_text_ready`` once it has been read as True,
        # so that loss_finetune does not read the (device) buffer, a sync,
        # every step. Reset whenever the buffer may change: stage entry and
        # state-dict loading.
        self._class_text_verified = False
        self.register_load_state_dict_pre_hook(self._forget_text_check)

    @staticmethod
    def _forget_text_check(module, *args, **kwargs) -> None:
        module._class_text_verified = False

    def _build_prompt_learners(self, cfg: dict) -> None:
        """Two learners with the same template: visible and infrared."""
        self.prompt_learner_vis = MODELS.build(cfg)
        self.prompt_learner_ir = MODELS.build(copy.deepcopy(cfg))

    # ---------------------------------------------------------------- stage
    def _enter_stage(self, name: str) -> None:
        self._class_text_verified = False
        if name in ('prompt', 'fusion'):
            # T will depend on what these stages learn.
            self.class_text_ready.fill_(False)
        elif name == 'finetune':
            # Once per stage entry, so reading the buffer is no concern.
            if not bool(self.class_text_ready):
                feats = self.compute_class_text_features()
                # Dropout draws may differ between ranks (diff_rank_seed):
                # keep rank 0's T everywhere.
                broadcast(feats, src=0)
                self.class_text_feats.copy_(feats)
                self.class_text_ready.fill_(True)
            self._class_text_verified = True

    @torch.no_grad()
    def compute_class_text_features(self) -> torch.Tensor:
        """``[C, D]`` fused text features of every identity.

        With ``class_text_dropout`` the fusion runs in train mode (dropout
        active), as in the reference; its mode is restored afterwards.
        """
        was_training = self.fusion.training
        self.fusion.train(self.class_text_dropout)
        try:
            labels = torch.arange(
                self.num_classes, device=self.class_text_feats.device)
            feats = torch.cat([
                self.fused_text_features(chunk)
                for chunk in labels.split(self.text_batch_size)
            ])
        finally:
            self.fusion.train(was_training)
        return feats.detach()

    # ----------------------------------------------------------------- text
    def modality_text_features(self, labels: torch.Tensor,
                               modalities: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` text features, each from the prompt learner of its
        sample's modality (visible: ``prompt_learner_vis``, infrared:
        ``prompt_learner_ir``).

        ``labels`` and ``modalities`` are best on the host (the models pass
        them so): the split by modality is then computed there, without a
        device sync, and only the index tensors are copied.
        """
        device = self.prompt_learner_vis.cls_ctx.device
        parts, order = [], []
        for modality, learner in ((VIS_ID, self.prompt_learner_vis),
                                  (IR_ID, self.prompt_learner_ir)):
            idx = torch.nonzero(modalities == modality).squeeze(1)
            if idx.numel():
                parts.append(
                    learner(to_device(labels[idx], device), self.text_encoder))
                order.append(idx)
        order = torch.cat(order)
        if order.numel() != labels.numel():
            raise ValueError(f'CSDN: modalities must be {VIS_ID} (visible) '
                             f'or {IR_ID} (infrared), got '
                             f'{modalities.unique().tolist()}')
        return torch.cat(parts)[to_device(torch.argsort(order), device)]

    def fused_text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` SII-fused text features of ``labels``; gradients reach
        the fusion only."""
        labels = to_device(labels, self.prompt_learner_vis.cls_ctx.device)
        with torch.no_grad():
            text_vis = self.prompt_learner_vis(labels, self.text_encoder)
            text_ir = self.prompt_learner_ir(labels, self.text_encoder)
        return self.fusion(text_vis, text_ir)

    # ------------------------------------------------------------- features
    @contextmanager
    def _cache_encoder_mode(self):
        """Put the image encoder in train mode during the feature-cache
        extraction of ``train_mode_cache_stages`` (BatchNorm on batch
        statistics), then restore its mode and BatchNorm buffers."""
        if self.current_stage not in self.train_mode_cache_stages:
            yield
            return
        encoder = self.image_encoder
        norms = [
            m for m in encoder.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        saved = [{
            k: v.clone()
            for k, v in m.named_buffers(recurse=False)
        } for m in norms]
        was_training = encoder.training
        encoder.train(True)
        try:
            yield
        finally:
            encoder.train(was_training)
            for module, buffers in zip(norms, saved):
                for key, value in buffers.items():
                    getattr(module, key).copy_(value)

    def extract_cache_features(self, data: dict) -> torch.Tensor:
        """Projected features ``v [B, D]`` for the prompt and fusion stages.

        Visible and infrared images are encoded in separate calls, as the
        reference does, so that BatchNorm on batch statistics (see
        ``train_mode_cache_stages``) sees one modality at a time.
        """
        data = self.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        # host metadata: the split by modality costs no device sync
        modalities = self.modalities_of(samples)
        cams = self.cams_of(samples)
        feats = None
        with self._cache_encoder_mode():
            for modality in (VIS_ID, IR_ID):
                idx = torch.nonzero(modalities == modality).squeeze(1)
                if not idx.numel():
                    continue
                idx_d = to_device(idx, inputs.device)
                _, proj = self.image_encoder(
                    inputs[idx_d],
                    modality=modalities[idx],
                    cam_ids=None if cams is None else cams[idx])
                if feats is None:
                    feats = proj.new_zeros((len(inputs), ) + proj.shape[1:])
                feats[idx_d] = proj
        return feats

    def _append_second_views(self, inputs: torch.Tensor, data_samples: List
                             ) -> Tuple[torch.Tensor, List[int]]:
        """Normalise the second views and append them to ``inputs``.

        Returns:
            tuple: ``(inputs, source)`` where ``inputs`` is ``[B + n, 3, H,
            W]`` and ``source`` lists, for each appended view, the index of
            its sample in the batch.
        """
        key = self.second_view_key
        if key is None or isinstance(data_samples, dict):
            return inputs, []
        source = [i for i, s in enumerate(data_samples) if key in s]
        if not source:
            return inputs, []
        views = [_image_to_tensor(data_samples[i].get(key)) for i in source]
        views = self.data_preprocessor(dict(inputs=views), True)['inputs']
        if views.shape[1:] != inputs.shape[1:]:
            raise ValueError(
                f'CSDN: second views ("{key}") have shape '
                f'{tuple(views.shape[1:])} but the first views '
                f'{tuple(inputs.shape[1:])}; both pipelines must crop to '
                'the same size')
        return torch.cat([inputs, views.to(inputs.dtype)]), source

    # ---------------------------------------------------------------- losses
    def loss_prompt(self, inputs: torch.Tensor,
                    data_samples: dict) -> Dict[str, torch.Tensor]:
        """Stage 1 on cached features ``v [B, D]``: each feature against the
        text of its modality's prompt learner."""
        # host labels / modalities (see mmvireid.models.utils.device)
        labels = self.labels_of(data_samples)
        modalities = self.modalities_of(data_samples)
        text = self.modality_text_features(labels, modalities)
        return dict(
            loss_supcon_i2t=self.prompt_loss(inputs, text, labels, labels),
            loss_supcon_t2i=self.prompt_loss(text, inputs, labels, labels))

    def loss_fusion(self, inputs: torch.Tensor,
                    data_samples: dict) -> Dict[str, torch.Tensor]:
        """Stage 2 (SII) on cached features: fused text of each label."""
        labels = self.labels_of(data_samples)
        text = self.fused_text_features(labels)
        return dict(
            loss_supcon_i2t=self.prompt_loss(inputs, text, labels, labels),
            loss_supcon_t2i=self.prompt_loss(text, inputs, labels, labels))

    def loss_finetune(self, inputs: torch.Tensor,
                      data_samples: List) -> Dict[str, torch.Tensor]:
        """Stage 3 (HSE) on ``[visible; infrared]`` images plus the second
        visible views, with the frozen fused text ``T``."""
        if not self._class_text_verified:
            # Read the buffer once, not every step (a device sync).
            if not bool(self.class_text_ready):
                raise RuntimeError('CSDN: the fused class text features are '
                                   'missing; enter the finetune stage '
                                   'through switch_stage("finetune")')
            self._class_text_verified = True
        device = inputs.device
        # Labels, modalities, cameras and every index derived from them stay
        # on the host (no device sync); the device gets index copies.
        labels = self.labels_of(data_samples)
        modalities = self.modalities_of(data_samples)
        cams = self.cams_of(data_samples)
        num_first = len(inputs)
        inputs, source = self._append_second_views(inputs, data_samples)
        if source:
            source = torch.tensor(source)
            labels = torch.cat([labels, labels[source]])
            modalities = torch.cat([modalities, modalities[source]])
            if cams is not None:
                cams = torch.cat([cams, cams[source]])

        first_view = torch.arange(len(inputs)) < num_first
        vis = torch.nonzero(first_view & (modalities == VIS_ID)).squeeze(1)
        ir = torch.nonzero(modalities == IR_ID).squeeze(1)
        if not vis.numel() or not ir.numel():
            raise ValueError(
                'CSDN finetune needs visible and infrared images in every '
                f'batch, got {vis.numel()} visible and {ir.numel()} infrared'
                '; use CrossModalIdentitySampler')

        out = self.train_features(inputs, modalities, cams)
        # ID and triplet on f and v, one term each, and the accuracy
        losses = self.id_triplet_losses(out, labels)
        f, v = out['feats']
        vis_d, ir_d = to_device(vis, device), to_device(ir, device)
        T = self.class_text_feats
        losses['loss_i2t_vis'] = self.i2t_vis_loss(v[vis_d], T, labels[vis])
        losses['loss_i2t_ir'] = self.i2t_ir_loss(v[ir_d], T, labels[ir])
        if self.msel_loss is not None:
            # [first visible view; infrared], aligned by position.
            pair, pair_d = torch.cat([vis, ir]), torch.cat([vis_d, ir_d])
            losses['loss_msel'] = self.msel_loss(f[pair_d], labels[pair])
            losses['loss_msel_proj'] = self.msel_loss(v[pair_d], labels[pair])
        return losses
