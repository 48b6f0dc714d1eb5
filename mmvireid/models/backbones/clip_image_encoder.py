# Copyright (c) mmvireid contributors. All rights reserved.
"""CLIP image encoder (open_clip RN50 / ViT) adapted to person re-id.

The ReID surgery follows CLIP-ReID (Li et al., AAAI 2023) and CSDN:

* RN50: ``layer4`` runs at stride 1 (a 288x144 image gives an 18x9 map
  instead of 9x4), and the attention-pool positional embedding is
  interpolated from its 7x7 grid to the input grid.
* ViT: the patch convolution may use a stride smaller than the patch size
  (overlapping patches, "OLP"), giving a ``((H - p) // s + 1) x
  ((W - p) // s + 1)`` grid; the grid positional embedding is interpolated
  to it with the CLS position kept. An optional side-information embedding
  (SIE) adds a learnt per-camera vector to the CLS token only, before the
  positional embedding.
* CSDN: a modality-specific stem (RN50: conv1..avgpool; ViT: the patch
  convolution), one for visible and a copy for infrared images, in front of
  a shared body.

With ``channels_last=True`` the RN trunk runs in NHWC memory layout
(``torch.channels_last``): cuDNN's fastest convolution kernels for tensor
cores under mixed precision are NHWC ones, and without it every convolution
transposes its input and output around them.

Both grids are interpolated bilinearly (``align_corners=False``, no
antialias), exactly as CLIP-ReID's ``resize_pos_embed``; ``interpolation``
selects another ``F.interpolate`` mode (open_clip itself uses bicubic).
"""
import copy
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.registry import MODELS
from mmvireid.structures import IR_ID, VIS_ID
from ..utils.device import checks_enabled, to_device
from ..utils.open_clip_builder import (build_open_clip,
                                       check_pretrained_activation,
                                       init_clip_tower, load_clip_weights,
                                       resnet_grid_size, set_attnpool_grid)
from ..utils.pos_embed import resize_grid_pos_embed

__all__ = ['CLIPImageEncoder']

# Modules of open_clip's ModifiedResNet.stem(), in call order.
_RESNET_STEM = ('conv1', 'bn1', 'act1', 'conv2', 'bn2', 'act2', 'conv3', 'bn3',
                'act3', 'avgpool')


def _run_blocks(transformer: nn.Module, blocks, x: torch.Tensor):
    """Run some of an open_clip ``Transformer``'s blocks on ``[B, N, D]``
    tokens, handling the layouts of open_clip versions that keep the
    sequence dimension first."""
    batch_first = getattr(transformer, 'batch_first', True)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks:
        x = block(x)
    if not batch_first:
        x = x.transpose(0, 1)
    return x


def _pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f'{name} must be a positive int or (h, w) pair, got '
                         f'{value}')
    return value


@MODELS.register_module()
class CLIPImageEncoder(BaseModule):
    """The image tower of an open_clip CLIP, with ReID surgery.

    Args:
        arch (str | dict): open_clip model name (``'RN50'``, ``'ViT-B-16'``)
            or an architecture dict for :func:`build_open_clip` (tiny models
            for tests). Default: 'RN50'.
        pretrained (str, optional): open_clip tag (``'openai'``) or a local
            CLIP checkpoint; its ``visual.*`` keys are loaded in
            :meth:`init_weights`. Default: None (random init).
        input_size (tuple[int, int]): Input (H, W); fixes the positional
            embedding grid. Default: (288, 144).
        last_stride (int): RN50 only: stride of ``layer4`` (1 as CLIP-ReID
            and CSDN, 2 as CLIP). Default: 1.
        stride_size (int | tuple[int, int]): ViT only: stride of the patch
            convolution; smaller than the patch size gives overlapping
            patches. Default: 16.
        camera_embedding (dict, optional): ViT only: SIE,
            ``dict(num_cameras=N, coe=3.0)``. ``cam_ids`` passed to
            :meth:`forward` must then lie in ``[0, N)`` (use N = 7 for
            SYSU-MM01's camera numbers 1..6). Default: None.
        modality_specific_stem (bool): Give infrared images their own stem
            (a copy of the visible one); ``forward`` then needs
            ``modality``. Default: False.
        frozen (bool): Freeze all parameters and keep the module (its
            BatchNorms) in eval mode. Default: False.
        quick_gelu (bool): QuickGELU, as the OpenAI weights need; set False
            for GELU-trained weights (most LAION / DataComp tags). An
            open_clip tag trained with the other one is refused.
            Default: True.
        interpolation (str): Positional-embedding interpolation mode.
            Default: 'bilinear'.
        allow_torchscript (bool): Let ``pretrained`` be an OpenAI
            TorchScript archive (runs code from the file). Default: False.
        channels_last (bool): RN (ModifiedResNet) only: keep the conv
            trunk's weights (visible and infrared stems, layer1..4) and its
            activations in ``torch.channels_last`` (NHWC) memory layout, the
            layout of cuDNN's tensor-core convolution kernels under AMP. The
            maths is unchanged: outputs equal the default layout's up to
            float rounding (a different kernel may sum in another order).
            A ViT has no conv trunk (one patch convolution), so it is
            refused there with a ValueError. Default: False.
        init_cfg (dict | list[dict], optional): mmengine init config; it
            runs before the pretrained CLIP weights are loaded, so it can
            never overwrite them. Default: None.

    Attributes:
        visual (nn.Module): The adapted open_clip ``ModifiedResNet`` or
            ``VisionTransformer``; its state-dict keys are the CLIP
            checkpoint's ``visual.*`` keys.
        ir_stem (nn.Module): The infrared stem (only with
            ``modality_specific_stem``).
        cam_embed (nn.Parameter): ``[num_cameras, width]`` SIE table (only
            with ``camera_embedding``).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'RN50',
                 pretrained: Optional[str] = None,
                 input_size: Sequence[int] = (288, 144),
                 last_stride: int = 1,
                 stride_size: Union[int, Sequence[int]] = 16,
                 camera_embedding: Optional[dict] = None,
                 modality_specific_stem: bool = False,
                 frozen: bool = False,
                 quick_gelu: bool = True,
                 interpolation: str = 'bilinear',
                 allow_torchscript: bool = False,
                 channels_last: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        self.arch = arch
        self.pretrained = pretrained
        self.input_size = _pair(input_size, 'input_size')
        self.modality_specific_stem = modality_specific_stem
        self.frozen = frozen
        self.interpolation = interpolation
        self.allow_torchscript = allow_torchscript

        # Fail before the (slow) build if a tag needs the other activation.
        check_pretrained_activation(arch, pretrained, quick_gelu)
        clip = build_open_clip(arch, quick_gelu=quick_gelu)
        # Keep only the image tower; the text tower is freed with `clip`.
        visual = clip.visual
        del clip
        if isinstance(visual, ModifiedResNet):
            self.arch_type = 'resnet'
            self._adapt_resnet(visual, last_stride)
        elif isinstance(visual, VisionTransformer):
            self.arch_type = 'vit'
            self._adapt_vit(visual, stride_size)
        else:
            raise TypeError(
                f'CLIPImageEncoder supports open_clip ModifiedResNet and '
                f'VisionTransformer image towers; arch {arch!r} has a '
                f'{type(visual).__name__}')
        self.visual = visual

        self.cam_embed = None
        self.cam_coe = 0.
        if camera_embedding is not None:
            self._build_camera_embedding(camera_embedding)

        if modality_specific_stem:
            # Built after the surgery so that the copy has the same stride.
            if self.arch_type == 'resnet':
                self.ir_stem = nn.Sequential(
                    OrderedDict((name, copy.deepcopy(getattr(visual, name)))
                                for name in _RESNET_STEM))
            else:
                self.ir_stem = copy.deepcopy(visual.conv1)

        self.channels_last = bool(channels_last)
        if self.channels_last:
            if self.arch_type != 'resnet':
                raise ValueError(
                    'CLIPImageEncoder: channels_last=True applies to the RN '
                    '(ModifiedResNet) conv trunk; the ViT arch '
                    f'{arch!r} has only its patch convolution. Set '
                    'channels_last=False for a ViT.')
            self._to_channels_last()

        if frozen:
            for param in self.parameters():
                param.requires_grad = False
            self.eval()

    # ------------------------------------------------------------------ #
    # construction
    # ------------------------------------------------------------------ #
    def _adapt_resnet(self, visual: nn.Module, last_stride: int) -> None:
        if last_stride not in (1, 2):
            raise ValueError(f'last_stride must be 1 or 2, got {last_stride}')
        if last_stride == 1:
            # open_clip's Bottleneck downsamples with an AvgPool2d after conv2
            # and another one in front of the shortcut conv; both become
            # identities (no parameters change, so the keys stay CLIP's).
            block = visual.layer4[0]
            block.avgpool = nn.Identity()
            if block.downsample is not None:
                block.downsample._modules['-1'] = nn.Identity()
            block.stride = 1
        self.last_stride = last_stride
        self.grid_size = resnet_grid_size(self.input_size, last_stride)
        # Interpolates the attention-pool grid (7x7 for RN50 at 224) to the
        # input grid and records it for load_clip_weights.
        set_attnpool_grid(visual, self.grid_size, mode=self.interpolation)
        visual.image_size = self.input_size
        self._feat_dim = visual.attnpool.k_proj.in_features
        self._proj_dim = visual.attnpool.c_proj.out_features

    def _adapt_vit(self, visual: nn.Module, stride_size) -> None:
        if (visual.attn_pool is not None or visual.pool_type != 'tok'
                or visual.final_ln_after_pool):
            raise NotImplementedError(
                'CLIPImageEncoder needs a ViT pooled by its class token '
                '(pool_type="tok", no attentional pool, ln_post before '
                f'pooling); {self.arch!r} is configured otherwise')
        patch_h, patch_w = visual.conv1.kernel_size
        stride_h, stride_w = _pair(stride_size, 'stride_size')
        if stride_h > patch_h or stride_w > patch_w:
            raise ValueError(
                f'stride_size {(stride_h, stride_w)} exceeds the patch size '
                f'{(patch_h, patch_w)}: pixels between patches would be '
                'skipped')
        height, width = self.input_size
        if height < patch_h or width < patch_w:
            raise ValueError(f'input_size {self.input_size} is smaller than '
                             f'the patch size {(patch_h, patch_w)}')
        visual.conv1.stride = (stride_h, stride_w)
        self.stride_size = (stride_h, stride_w)
        self.grid_size = ((height - patch_h) // stride_h + 1,
                          (width - patch_w) // stride_w + 1)
        visual.positional_embedding = nn.Parameter(
            resize_grid_pos_embed(
                visual.positional_embedding.data,
                visual.grid_size,
                self.grid_size,
                1,
                mode=self.interpolation))
        visual.grid_size = self.grid_size
        visual.image_size = self.input_size
        self._feat_dim = visual.conv1.out_channels
        self._proj_dim = visual.proj.shape[1]

    def _build_camera_embedding(self, cfg: dict) -> None:
        if self.arch_type != 'vit':
            raise ValueError(
                'camera_embedding (SIE) is defined for ViT encoders only: it '
                'is added to the class token, which a ResNet does not have')
        cfg = dict(cfg)
        unknown = set(cfg) - {'num_cameras', 'coe'}
        if unknown or 'num_cameras' not in cfg:
            raise KeyError('camera_embedding must be dict(num_cameras=N, '
                           f'coe=3.0); got {cfg}')
        num_cameras = int(cfg['num_cameras'])
        if num_cameras < 1:
            raise ValueError(f'camera_embedding.num_cameras must be >= 1, got '
                             f'{num_cameras}')
        self.cam_coe = float(cfg.get('coe', 3.0))
        self.cam_embed = nn.Parameter(torch.zeros(num_cameras, self.feat_dim))
        nn.init.trunc_normal_(self.cam_embed, std=0.02)

    def _to_channels_last(self) -> None:
        """Put the 4-D conv weights in ``torch.channels_last`` layout.

        ``Module.to(memory_format=...)`` restrides only 4-D parameters and
        buffers (conv weights); BatchNorm vectors and the attention pool's
        linear layers are unaffected. Loading a state dict copies into these
        tensors, which keeps their layout.
        """
        self.visual.to(memory_format=torch.channels_last)
        if self.modality_specific_stem:
            self.ir_stem.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ #
    # properties
    # ------------------------------------------------------------------ #
    @property
    def feat_dim(self) -> int:
        """Channels of ``feat``: 2048 for RN50 (layer4), 768 for ViT-B."""
        return self._feat_dim

    @property
    def proj_dim(self) -> int:
        """Dimension of ``proj`` (the CLIP embedding): 1024 RN50, 512
        ViT-B/16."""
        return self._proj_dim

    @property
    def feat_is_map(self) -> bool:
        """True when ``feat`` is a [B, C, h, w] map (RN50), False when it is
        a [B, C] token (ViT)."""
        return self.arch_type == 'resnet'

    # ------------------------------------------------------------------ #
    # weights
    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Run ``init_cfg`` (if any), then load the CLIP image tower
        (:func:`init_clip_tower`). The infrared stem starts as a copy of the
        loaded visible stem, as in CSDN."""
        init_clip_tower(self, self._load_clip_weights)

    def _load_clip_weights(self) -> None:
        if self.pretrained is not None:
            load_clip_weights(
                self.visual,
                self.pretrained,
                arch=self.arch,
                prefix_filter='visual.',
                allow_torchscript=self.allow_torchscript,
                interpolation=self.interpolation)
            self.sync_ir_stem()
        if self.channels_last:
            # load_state_dict copies in place (layout kept); a surgery that
            # replaced a conv weight would not, so enforce it once more.
            self._to_channels_last()

    def sync_ir_stem(self) -> None:
        """Copy the visible stem's weights (and BN statistics) into the
        infrared stem; a no-op without ``modality_specific_stem``."""
        if not self.modality_specific_stem:
            return
        if self.arch_type == 'resnet':
            state = {
                k: v
                for k, v in self.visual.state_dict().items()
                if k.split('.', 1)[0] in _RESNET_STEM
            }
        else:
            state = self.visual.conv1.state_dict()
        self.ir_stem.load_state_dict(state)

    def train(self, mode: bool = True) -> 'CLIPImageEncoder':
        # A frozen encoder keeps its BatchNorm statistics.
        super().train(mode and not self.frozen)
        return self

    # ------------------------------------------------------------------ #
    # forward
    # ------------------------------------------------------------------ #
    def _stem(self, x: torch.Tensor, modality: int) -> torch.Tensor:
        if self.arch_type == 'resnet':
            if modality == IR_ID:
                return self.ir_stem(x)
            return self.visual.stem(x)
        conv = self.ir_stem if modality == IR_ID else self.visual.conv1
        return conv(x)

    def forward_stem(self,
                     x: torch.Tensor,
                     modality: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the (modality-specific) stem.

        Args:
            x (Tensor): Images ``[B, 3, H, W]`` with (H, W) = ``input_size``.
            modality (Tensor, optional): ``[B]`` ints, 0 = visible,
                1 = infrared. Required with ``modality_specific_stem``,
                ignored otherwise. Pass it on the host (as the models do):
                the batch is then split by modality without a device sync;
                a device tensor works too, at the cost of one sync.

        Returns:
            Tensor: RN50 ``[B, width, H/4, W/4]``; ViT patch embeddings
            ``[B, width, gh, gw]``.
        """
        if x.dim() != 4 or tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f'CLIPImageEncoder was built for [B, 3, H, W] inputs with '
                f'(H, W) = {self.input_size}; got shape {tuple(x.shape)}')
        if self.channels_last:
            # NHWC activations for the NHWC weights (a no-op if already).
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.modality_specific_stem:
            return self._stem(x, VIS_ID)
        if modality is None:
            raise ValueError(
                'modality_specific_stem=True needs `modality` '
                f'({VIS_ID} = visible, {IR_ID} = infrared for each image)')
        # Kept where it is: the models pass host tensors, so the split
        # below is computed on the host, without a device sync.
        modality = torch.as_tensor(modality).reshape(-1)
        if modality.numel() != x.shape[0]:
            raise ValueError(f'modality has {modality.numel()} entries for '
                             f'a batch of {x.shape[0]} images')
        vis_idx = torch.nonzero(modality == VIS_ID).squeeze(1)
        ir_idx = torch.nonzero(modality == IR_ID).squeeze(1)
        if vis_idx.numel() + ir_idx.numel() != modality.numel():
            present = torch.unique(modality).tolist()
            raise ValueError(f'modality values must be {VIS_ID} (visible) '
                             f'or {IR_ID} (infrared), got {sorted(present)}')
        if not ir_idx.numel():
            # Single-modality batch (test time, or per-modality forward):
            # no gather / scatter.
            return self._stem(x, VIS_ID)
        if not vis_idx.numel():
            return self._stem(x, IR_ID)
        # Mixed batch: each part goes through its own stem (BatchNorm sees
        # only its modality, as in CSDN), then the original order is
        # restored.
        vis_idx = to_device(vis_idx, x.device)
        ir_idx = to_device(ir_idx, x.device)
        vis_out = self._stem(x[vis_idx], VIS_ID)
        ir_out = self._stem(x[ir_idx], IR_ID)
        out = torch.empty((x.shape[0], ) + tuple(vis_out.shape[1:]),
                          dtype=vis_out.dtype,
                          device=vis_out.device,
                          memory_format=torch.channels_last
                          if self.channels_last else torch.contiguous_format)
        out[vis_idx] = vis_out
        out[ir_idx] = ir_out
        return out

    def forward_body(self,
                     x: torch.Tensor,
                     cam_ids: Optional[torch.Tensor] = None,
                     return_mid: bool = False,
                     with_sie: bool = True) -> tuple:
        """Run the shared part after the stem.

        Args:
            x (Tensor): Output of :meth:`forward_stem`.
            cam_ids (Tensor, optional): ``[B]`` camera indices, required
                with ``camera_embedding`` (unless ``with_sie=False``) and
                ignored otherwise.
            return_mid (bool): Also return the intermediate feature.
            with_sie (bool): Add the camera embedding (when there is one).

        Returns:
            tuple: See :meth:`forward`.
        """
        visual = self.visual
        if self.arch_type == 'resnet':
            x = visual.layer1(x)
            x = visual.layer2(x)
            mid_map = visual.layer3(x)
            feat = visual.layer4(mid_map)
            # open_clip's AttentionPool2d returns token 0 (the pooled query).
            proj = visual.attnpool(feat)
            if not return_mid:
                return feat, proj
            return mid_map.mean(dim=(2, 3)), feat, proj

        batch = x.shape[0]
        x = x.flatten(2).transpose(1, 2)  # [B, gh*gw, width]
        cls_token = visual.class_embedding.to(x.dtype).view(1, 1, -1)
        cls_token = cls_token.expand(batch, -1, -1)
        if self.cam_embed is not None and with_sie:
            cls_token = cls_token + self.cam_coe * self._camera_vectors(
                cam_ids, batch, x.device).unsqueeze(1).to(x.dtype)
        x = torch.cat([cls_token, x], dim=1)
        x = x + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        if return_mid:
            # CLIP-ReID's third triplet feature: the class token entering
            # the last block (before any LayerNorm). open_clip's
            # Transformer.forward only loops over its blocks, so running
            # them in two slices computes the same thing.
            blocks = visual.transformer.resblocks
            x = _run_blocks(visual.transformer, blocks[:-1], x)
            mid = x[:, 0]
            x = _run_blocks(visual.transformer, blocks[-1:], x)
        else:
            x = visual.transformer(x)
        # LayerNorm is per token, so normalising the CLS token alone equals
        # open_clip's ln_post over all tokens followed by pooling.
        feat = visual.ln_post(x[:, 0])
        proj = feat @ visual.proj
        if return_mid:
            return mid, feat, proj
        return feat, proj

    def _camera_vectors(self, cam_ids, batch: int,
                        device: torch.device) -> torch.Tensor:
        if cam_ids is None:
            raise ValueError(
                'This encoder has a camera embedding (SIE): pass `cam_ids`')
        # On the host when the models call (checked there for free), then
        # copied without blocking.
        cam_ids = torch.as_tensor(cam_ids, dtype=torch.long).reshape(-1)
        if cam_ids.numel() != batch:
            raise ValueError(f'cam_ids has {cam_ids.numel()} entries for a '
                             f'batch of {batch} images')
        num_cameras = self.cam_embed.shape[0]
        out_of_range = (cam_ids < 0) | (cam_ids >= num_cameras)
        if checks_enabled(cam_ids) and bool(out_of_range.any()):
            raise ValueError(f'cam_ids must lie in [0, {num_cameras}) '
                             f'(camera_embedding.num_cameras), got '
                             f'{sorted(set(cam_ids.tolist()))}')
        return self.cam_embed[to_device(cam_ids, device)]

    def forward(self,
                x: torch.Tensor,
                modality: Optional[torch.Tensor] = None,
                cam_ids: Optional[torch.Tensor] = None,
                return_mid: bool = False,
                with_sie: bool = True) -> tuple:
        """Encode a batch of images.

        Args:
            x (Tensor): ``[B, 3, H, W]`` normalised images.
            modality (Tensor, optional): ``[B]``, 0 = visible, 1 = infrared;
                needed with ``modality_specific_stem``.
            cam_ids (Tensor, optional): ``[B]`` camera indices; needed with
                ``camera_embedding`` unless ``with_sie=False``.
            return_mid (bool): Return ``(mid, feat, proj)``, with ``mid``
                the intermediate feature CLIP-ReID's triplet loss also uses:
                RN50 ``layer3`` average-pooled, ``[B, 16 * width]``
                (``[B, 1024]``); ViT the class token entering the last
                block, before any LayerNorm, ``[B, width]``. Default: False.
            with_sie (bool): Add the camera embedding (SIE) when the encoder
                has one. CLIP-ReID extracts its prompt-stage features
                without it. Default: True.

            Both are best passed on the host (the models do): they are
            validated and turned into indices there, free of device syncs
            (see :mod:`mmvireid.models.utils.device`).

        Returns:
            tuple[Tensor, Tensor]: ``(feat, proj)``.

            - RN50: ``feat`` = layer4 map ``[B, 32 * width, gh, gw]``
              (``[B, 2048, H/16, W/16]`` with ``last_stride=1``) and
              ``proj`` = attention-pool output ``[B, embed_dim]``.
            - ViT: ``feat`` = class token after ``ln_post`` ``[B, width]``
              and ``proj`` = ``feat @ proj`` ``[B, embed_dim]``.
        """
        return self.forward_body(
            self.forward_stem(x, modality),
            cam_ids,
            return_mid=return_mid,
            with_sie=with_sie)
