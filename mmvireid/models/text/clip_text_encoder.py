# Copyright (c) mmvireid contributors. All rights reserved.
"""Frozen CLIP text encoder that also runs on given token embeddings.

open_clip's ``CLIP.encode_text`` only takes token ids. Prompt learners
replace some token embeddings by learnt vectors, so the same computation is
exposed here on embeddings (:meth:`CLIPTextEncoder.forward_embeddings`).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.registry import MODELS
from ..utils.open_clip_builder import (build_open_clip,
                                       check_pretrained_activation,
                                       init_clip_tower, load_clip_weights)

__all__ = ['CLIPTextEncoder']


@MODELS.register_module()
class CLIPTextEncoder(BaseModule):
    """The text tower of an open_clip CLIP, always frozen.

    It keeps ``token_embedding``, ``positional_embedding``, ``transformer``,
    ``ln_final``, ``text_projection`` and the causal ``attn_mask`` of the
    CLIP built from ``arch``, with the same state-dict keys as a CLIP
    checkpoint's text part. All parameters have ``requires_grad=False`` and
    the module stays in eval mode, but gradients still flow *through* it to
    learnt inputs (prompt tokens).

    Args:
        arch (str | dict): open_clip model name or architecture dict (see
            :func:`build_open_clip`). Default: 'RN50'.
        pretrained (str, optional): open_clip tag or CLIP checkpoint; its
            text keys (all but ``visual.*``, ``logit_scale`` and
            ``logit_bias``) are loaded in :meth:`init_weights`.
            Default: None.
        quick_gelu (bool): QuickGELU, as the OpenAI weights need; set False
            for GELU-trained weights (most LAION / DataComp tags). An
            open_clip tag trained with the other one is refused.
            Default: True.
        allow_torchscript (bool): Let ``pretrained`` be an OpenAI
            TorchScript archive (runs code from the file). Default: False.
        init_cfg (dict | list[dict], optional): mmengine init config, run
            before the CLIP weights are loaded. Default: None.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'RN50',
                 pretrained: Optional[str] = None,
                 quick_gelu: bool = True,
                 allow_torchscript: bool = False,
                 truncate_after_eot: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.truncate_after_eot = bool(truncate_after_eot)
        self.pretrained = pretrained
        self.allow_torchscript = allow_torchscript

        # Fail before the (slow) build if a tag needs the other activation.
        check_pretrained_activation(arch, pretrained, quick_gelu)
        clip = build_open_clip(arch, quick_gelu=quick_gelu)
        if not hasattr(clip, 'token_embedding'):
            raise TypeError(
                f'CLIPTextEncoder needs an open_clip CLIP with a built-in '
                f'text transformer; {arch!r} builds a '
                f'{type(clip).__name__} (e.g. a Hugging Face text tower)')
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        # Not persistent (as in open_clip): it is derived from the context
        # length and never stored in checkpoints.
        self.register_buffer('attn_mask', clip.attn_mask, persistent=False)
        self.pool_type = clip.text_pool_type
        self.eos_id = getattr(clip, 'text_eos_id', None)
        self._context_length = int(clip.context_length)
        del clip
        self._tokenizer = None

        for param in self.parameters():
            param.requires_grad = False
        self.eval()

    # ------------------------------------------------------------------ #
    # properties
    # ------------------------------------------------------------------ #
    @property
    def width(self) -> int:
        """Token embedding width (512 for the OpenAI CLIPs)."""
        return self.token_embedding.embedding_dim

    @property
    def embed_dim(self) -> int:
        """Output dimension D (1024 for RN50, 512 for ViT-B/16)."""
        proj = self.text_projection
        if proj is None:
            return self.width
        if isinstance(proj, nn.Linear):
            return proj.out_features
        return proj.shape[1]

    @property
    def context_length(self) -> int:
        """Maximum number of tokens (77)."""
        return self._context_length

    @property
    def truncates_after_eot(self) -> bool:
        """Whether positions after the EOT token can be dropped.

        With CLIP's causal attention mask the output at position ``i``
        depends on tokens ``0..i`` only, and ``argmax`` pooling reads the
        output at the EOT token, so the padding after the last EOT of a
        batch changes nothing but costs most of the compute (a CLIP-ReID
        prompt has 12 of the 77 tokens). Same maths, float rounding aside
        (matmuls of another shape); see :meth:`encode_texts` and
        :class:`IDPromptLearner`.
        """
        return (self.truncate_after_eot and self.pool_type == 'argmax'
                and self.attn_mask is not None)

    # ------------------------------------------------------------------ #
    # weights / mode
    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Run ``init_cfg`` (if any), then load the CLIP text tower
        (:func:`init_clip_tower`)."""
        init_clip_tower(self, self._load_clip_weights)

    def _load_clip_weights(self) -> None:
        if self.pretrained is not None:
            load_clip_weights(
                self,
                self.pretrained,
                arch=self.arch,
                ignore_prefixes=('visual.', 'logit_scale', 'logit_bias'),
                allow_torchscript=self.allow_torchscript)

    def train(self, mode: bool = True) -> 'CLIPTextEncoder':
        # Always frozen: a parent's .train() must not switch it.
        return super().train(False)

    # ------------------------------------------------------------------ #
    # text
    # ------------------------------------------------------------------ #
    @property
    def tokenizer(self):
        """The open_clip tokenizer of ``arch`` (built on first use; the
        bundled BPE vocabulary works offline)."""
        if self._tokenizer is None:
            import open_clip
            if isinstance(self.arch, str):
                self._tokenizer = open_clip.get_tokenizer(
                    self.arch.replace('/', '-'),
                    context_length=self.context_length)
            else:
                self._tokenizer = open_clip.SimpleTokenizer(
                    context_length=self.context_length)
        return self._tokenizer

    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        """Tokenise texts (too long ones are truncated, EOT kept).

        Returns:
            LongTensor: ``[N, context_length]`` on this module's device.
        """
        if isinstance(texts, str):
            texts = [texts]
        tokens = self.tokenizer(list(texts))
        return tokens.to(self.token_embedding.weight.device)

    def encode_texts(self, texts: Union[str, List[str]]) -> torch.Tensor:
        """Tokenise and encode texts: ``[N, embed_dim]``.

        With :attr:`truncates_after_eot` the tokens are cut after the
        batch's last EOT on the host (no device sync) before encoding.
        """
        if isinstance(texts, str):
            texts = [texts]
        tokens = self.tokenizer(list(texts))
        if self.truncates_after_eot and tokens.numel():
            tokens = tokens[:, :int(tokens.argmax(dim=-1).max()) + 1]
        return self.encode_tokens(
            tokens.to(self.token_embedding.weight.device))

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encode token ids ``[N, L]``; equals open_clip
        ``CLIP.encode_text``. Returns ``[N, embed_dim]``."""
        if tokens.dim() != 2:
            raise ValueError('tokens must be [N, L] token ids, got shape '
                             f'{tuple(tokens.shape)}')
        return self.forward_embeddings(self.token_embedding(tokens), tokens)

    def forward_embeddings(self, embeds: torch.Tensor,
                           tokens: torch.Tensor) -> torch.Tensor:
        """Run the text transformer on token embeddings.

        Args:
            embeds (Tensor): ``[N, L, width]`` token embeddings (some may be
                learnt), ``L <= context_length``.
            tokens (Tensor): ``[N, L]`` token ids of the same sequences; only
                used to find the pooling position (the EOT token, i.e. the
                largest id, for CLIP's ``argmax`` pooling).

        Returns:
            Tensor: ``[N, embed_dim]`` text features (not normalised).
        """
        from open_clip.transformer import text_global_pool
        if embeds.dim() != 3 or embeds.shape[-1] != self.width:
            raise ValueError(f'embeds must be [N, L, {self.width}], got shape '
                             f'{tuple(embeds.shape)}')
        if tuple(tokens.shape) != tuple(embeds.shape[:2]):
            raise ValueError(f'tokens {tuple(tokens.shape)} and embeds '
                             f'{tuple(embeds.shape)} disagree on [N, L]')
        length = embeds.shape[1]
        if length > self.context_length:
            raise ValueError(f'{length} tokens exceed the context length '
                             f'{self.context_length}')
        cast_dtype = self.transformer.get_cast_dtype()
        x = embeds.to(cast_dtype) + self.positional_embedding[:length].to(
            cast_dtype)
        attn_mask = self.attn_mask
        if attn_mask is not None:
            attn_mask = attn_mask[:length, :length]
        x = self.transformer(x, attn_mask=attn_mask)
        x = self.ln_final(x)
        x = text_global_pool(
            x, tokens, self.pool_type, eos_token_id=self.eos_id)
        proj = self.text_projection
        if proj is None:
            return x
        if isinstance(proj, nn.Linear):
            return proj(x)
        return x @ proj

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`encode_tokens`."""
        return self.encode_tokens(tokens)
