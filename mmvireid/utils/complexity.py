# Copyright (c) mmvireid contributors. All rights reserved.
"""FLOPs and parameters of a model's encoders
(``tools/analysis_tools/get_flops.py``), through mmengine's complexity
analysis (:func:`mmengine.analysis.get_model_complexity_info`, which counts
one fused multiply-add as one FLOP, as fvcore and mmpretrain do).

* The image encoder at the config's input size, one image, at test time:
  the path every training and test image takes (the modality-specific stem
  of CSDN-style encoders counts once: an image goes through one stem).
* The text encoder, one prompt as the model feeds it (the prompt learner's
  template, cut after its end-of-text token when the encoder allows it, so
  only the tokens the model really runs). The class text features of all
  identities (``num_classes`` prompts) are computed once per stage that
  uses them, so that cost is reported once, not per image.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger

__all__ = [
    'encoder_complexity', 'image_encoder_complexity', 'text_encoder_complexity'
]


class _ImageEncoderFLOPs(nn.Module):
    """``images -> proj`` through the encoder, with the side inputs a
    modality-specific stem or a camera embedding needs fixed."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        kwargs = {}
        if getattr(self.encoder, 'modality_specific_stem', False):
            kwargs['modality'] = torch.zeros(batch, dtype=torch.long)
        if getattr(self.encoder, 'cam_embed', None) is not None:
            kwargs['cam_ids'] = torch.zeros(batch, dtype=torch.long)
        out = self.encoder(images, **kwargs)
        return out[-1] if isinstance(out, (tuple, list)) else out


class _TextEncoderFLOPs(nn.Module):
    """``token embeddings -> text feature`` for fixed token ids."""

    def __init__(self, encoder: nn.Module, tokens: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer('tokens', tokens, persistent=False)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_embeddings(embeds, self.tokens)


def _count(module: nn.Module, inputs: tuple, show_table: bool) -> dict:
    logger = MMLogger.get_current_instance()
    level = logger.level
    # unsupported-operator notes (e.g. aten::add) go to the log at WARNING
    logger.setLevel('ERROR')
    try:
        with torch.no_grad():
            return get_model_complexity_info(
                module, inputs=inputs, show_table=show_table, show_arch=False)
    finally:
        logger.setLevel(level)


def _param_count(module: nn.Module, skip: Sequence[str] = ()) -> int:
    return sum(p.numel() for name, p in module.named_parameters()
               if not any(name.startswith(s) for s in skip))


def image_encoder_complexity(encoder: nn.Module,
                             input_size: Optional[Sequence[int]] = None,
                             show_table: bool = False) -> dict:
    """FLOPs of one image through ``encoder`` and its parameters.

    Args:
        encoder (nn.Module): A :class:`CLIPImageEncoder` (or any module
            taking ``[B, 3, H, W]``).
        input_size (tuple[int, int], optional): ``(H, W)``; defaults to the
            encoder's ``input_size``.
        show_table (bool): Also return mmengine's per-module table.

    Returns:
        dict: ``flops``, ``params`` (all of the encoder's), ``params_used``
        (without the infrared stem, which an image skips when it takes the
        visible one), ``input_shape`` and ``table``.
    """
    if input_size is None:
        input_size = getattr(encoder, 'input_size', None)
        if input_size is None:
            raise ValueError(f'{type(encoder).__name__} has no input_size; '
                             'pass --shape H W.')
    h, w = (int(v) for v in input_size)
    was_training = encoder.training
    encoder.eval()
    try:
        result = _count(
            _ImageEncoderFLOPs(encoder), (torch.zeros(1, 3, h, w), ),
            show_table)
    finally:
        encoder.train(was_training)
    return dict(
        flops=int(result['flops']),
        params=_param_count(encoder),
        params_used=_param_count(encoder, skip=('ir_stem', )),
        input_shape=(1, 3, h, w),
        table=result['out_table'])


def text_encoder_complexity(text_encoder: nn.Module,
                            prompt_learner: Optional[nn.Module] = None,
                            show_table: bool = False) -> dict:
    """FLOPs of one prompt through ``text_encoder`` and its parameters.

    Args:
        text_encoder (nn.Module): A :class:`CLIPTextEncoder`.
        prompt_learner (nn.Module, optional): The model's prompt learner:
            its template's tokens are fed, cut after the end-of-text token
            as :class:`IDPromptLearner` does. Without one, a full
            ``context_length`` sequence.
        show_table (bool): Also return mmengine's per-module table.

    Returns:
        dict: ``flops`` (one prompt), ``params``, ``num_tokens`` and
        ``table``.
    """
    tokens = getattr(prompt_learner, 'template_tokens', None)
    if tokens is not None:
        tokens = tokens[:1].clone()
        if getattr(prompt_learner, 'truncate_after_eot', False) and getattr(
                text_encoder, 'truncates_after_eot', False):
            tokens = tokens[:, :prompt_learner.num_prompt_tokens]
    else:
        length = int(text_encoder.context_length)
        tokens = torch.zeros(1, length, dtype=torch.long)
        tokens[0, -1] = 1  # the pooled (end-of-text) position
    embeds = torch.zeros(1, tokens.shape[1], int(text_encoder.width))
    result = _count(
        _TextEncoderFLOPs(text_encoder, tokens), (embeds, ), show_table)
    return dict(
        flops=int(result['flops']),
        params=_param_count(text_encoder),
        num_tokens=int(tokens.shape[1]),
        table=result['out_table'])


def encoder_complexity(model: nn.Module,
                       input_size: Optional[Sequence[int]] = None,
                       show_table: bool = False) -> dict:
    """Image and (when the model has one) text encoder complexity.

    Returns:
        dict: ``image`` (:func:`image_encoder_complexity`), ``text``
        (:func:`text_encoder_complexity`, or None), ``num_classes`` and
        ``model_params`` (every parameter of the model).
    """
    encoder = getattr(model, 'image_encoder', None)
    if encoder is None:
        raise ValueError(f'{type(model).__name__} has no image_encoder to '
                         'analyse.')
    text = None
    text_encoder = getattr(model, 'text_encoder', None)
    if text_encoder is not None and hasattr(text_encoder,
                                            'forward_embeddings'):
        learners = [
            m for name, m in model.named_children()
            if name.startswith('prompt_learner')
        ]
        text = text_encoder_complexity(text_encoder,
                                       learners[0] if learners else None,
                                       show_table)
    return dict(
        image=image_encoder_complexity(encoder, input_size, show_table),
        text=text,
        num_classes=getattr(model, 'num_classes', None),
        model_params=_param_count(model))
