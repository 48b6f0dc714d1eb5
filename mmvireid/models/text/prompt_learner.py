# Copyright (c) mmvireid contributors. All rights reserved.
"""Identity-specific learnable prompts (CLIP-ReID stage 1; CSDN's per-modality
prompt learners are two instances)."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvireid.registry import MODELS

__all__ = ['IDPromptLearner']


@MODELS.register_module()
class IDPromptLearner(BaseModule):
    """Learn ``num_ctx`` word vectors per identity inside a text template.

    The template (``'A photo of a X X X X person.'``) is tokenised once; the
    embeddings of its placeholder tokens (``'X'``) are replaced by the
    identity's learnt vectors ``cls_ctx[label]``, and the frozen text encoder
    turns the sequence into the identity's text feature. Only ``cls_ctx``
    trains; the other token embeddings are read from the text encoder's
    (frozen) embedding table at every call, so they follow the weights it
    loads in ``init_weights``.

    Args:
        num_classes (int): Number of training identities C.
        embed_width (int): Token embedding width W of the text encoder (512
            for the OpenAI CLIPs); checked against the encoder at each call.
        template (str): Prompt text containing ``num_ctx`` placeholder
            words. Default: 'A photo of a X X X X person.'.
        placeholder (str): The placeholder word; it must be a single BPE
            token and must not occur elsewhere in the template (the
            tokenizer lower-cases, so 'X' also matches 'x'). Default: 'X'.
        num_ctx (int): Number of placeholders (learnt vectors per identity).
            Default: 4.
        ctx_std (float): Std of the normal init of ``cls_ctx``.
            Default: 0.02.
        context_length (int): Token length of the template tensor, at most
            the text encoder's context length. Default: 77.
        truncate_after_eot (bool): Feed the text encoder only the template's
            tokens up to its EOT when the encoder allows it
            (:attr:`CLIPTextEncoder.truncates_after_eot`: causal mask,
            EOT pooling), e.g. 12 of 77 for the default template: the same
            features (float rounding aside) at a fraction of the cost of
            every prompt-stage step. False runs the references' full 77
            tokens. Default: True.
        init_cfg (dict | list[dict], optional): mmengine init config.

    Attributes:
        cls_ctx (nn.Parameter): ``[C, num_ctx, W]``.
        template_tokens (Tensor): ``[1, context_length]`` buffer.
        ctx_positions (Tensor): ``[num_ctx]`` buffer, indices of the
            placeholders in ``template_tokens``.
    """

    def __init__(self,
                 num_classes: int,
                 embed_width: int,
                 template: str = 'A photo of a X X X X person.',
                 placeholder: str = 'X',
                 num_ctx: int = 4,
                 ctx_std: float = 0.02,
                 context_length: int = 77,
                 truncate_after_eot: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        from open_clip import SimpleTokenizer

        if num_classes < 1 or embed_width < 1 or num_ctx < 1:
            raise ValueError(
                'num_classes, embed_width and num_ctx must be >= 1; got '
                f'{num_classes}, {embed_width}, {num_ctx}')
        self.num_classes = int(num_classes)
        self.embed_width = int(embed_width)
        self.template = template
        self.placeholder = placeholder
        self.num_ctx = int(num_ctx)

        tokenizer = SimpleTokenizer(context_length=context_length)
        placeholder_ids = tokenizer.encode(placeholder)
        if len(placeholder_ids) != 1:
            raise ValueError(
                f'placeholder {placeholder!r} must be a single token; the '
                f'CLIP tokenizer splits it into {len(placeholder_ids)}')
        body = tokenizer.encode(template)
        if len(body) + 2 > context_length:
            raise ValueError(
                f'template {template!r} has {len(body)} tokens, more than '
                f'the {context_length - 2} that fit with SOT/EOT')
        tokens = tokenizer([template])  # [1, context_length]
        positions = torch.nonzero(tokens[0] == placeholder_ids[0]).squeeze(1)
        if positions.numel() != self.num_ctx:
            raise ValueError(
                f'template {template!r} contains {positions.numel()} '
                f'placeholder tokens {placeholder!r} but num_ctx='
                f'{self.num_ctx}')
        self.truncate_after_eot = bool(truncate_after_eot)
        # Tokens up to and including EOT (the largest id), known on the host.
        self.num_prompt_tokens = int(tokens[0].argmax()) + 1
        # Derived from the config, so not stored in checkpoints.
        self.register_buffer('template_tokens', tokens, persistent=False)
        self.register_buffer('ctx_positions', positions, persistent=False)

        self.cls_ctx = nn.Parameter(
            torch.empty(self.num_classes, self.num_ctx, self.embed_width))
        nn.init.normal_(self.cls_ctx, std=ctx_std)

    def _check_text_encoder(self, text_encoder: nn.Module) -> None:
        for attr in ('token_embedding', 'forward_embeddings', 'width',
                     'context_length'):
            if not hasattr(text_encoder, attr):
                raise TypeError(
                    'IDPromptLearner needs a CLIPTextEncoder-like module '
                    f'(with {attr!r}); got {type(text_encoder).__name__}')
        if text_encoder.width != self.embed_width:
            raise ValueError(
                f'IDPromptLearner was built with embed_width='
                f'{self.embed_width}, but the text encoder\'s token width '
                f'is {text_encoder.width}; set embed_width='
                f'{text_encoder.width} in the prompt learner config')
        if self.template_tokens.shape[1] > text_encoder.context_length:
            raise ValueError(
                f'IDPromptLearner context_length '
                f'{self.template_tokens.shape[1]} exceeds the text '
                f'encoder\'s {text_encoder.context_length}')

    def forward(self, labels: torch.Tensor,
                text_encoder: nn.Module) -> torch.Tensor:
        """Text features of the identities in ``labels``.

        Args:
            labels (Tensor): ``[B]`` identity indices in ``[0, C)``.
            text_encoder (CLIPTextEncoder): The frozen text encoder.

        Returns:
            Tensor: ``[B, D]``; differentiable w.r.t. ``cls_ctx[labels]``.
        """
        self._check_text_encoder(text_encoder)
        labels = torch.as_tensor(
            labels, device=self.cls_ctx.device, dtype=torch.long).reshape(-1)
        batch = labels.numel()
        template = self.template_tokens
        if self.truncate_after_eot and getattr(text_encoder,
                                               'truncates_after_eot', False):
            template = template[:, :self.num_prompt_tokens]
        tokens = template.expand(batch, -1)
        with torch.no_grad():
            base = text_encoder.token_embedding(template)
        embeds = base.expand(batch, -1, -1).clone()  # [B, L, W]
        embeds[:, self.ctx_positions] = self.cls_ctx[labels].to(embeds.dtype)
        return text_encoder.forward_embeddings(embeds, tokens)

    @torch.no_grad()
    def all_class_features(self,
                           text_encoder: nn.Module,
                           batch_size: int = 64) -> torch.Tensor:
        """Text features of all C identities, ``[C, D]``, without gradients
        (computed in chunks of ``batch_size`` to bound memory), e.g. the
        frozen text bank of the fine-tuning stage."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        labels = torch.arange(self.num_classes, device=self.cls_ctx.device)
        return torch.cat(
            [self(chunk, text_encoder) for chunk in labels.split(batch_size)])
