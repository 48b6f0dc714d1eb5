# Copyright (c) mmvireid contributors. All rights reserved.
"""EEES: Embedding and Enriching Explicit Semantics
(docs/en/methods/eees.md): Explicit Semantics Embedding (ESE), Cross-View
Semantics Compensation (CVSC) and Cross-Modality Semantics Purification
(CMSP)."""
import hashlib
from typing import Dict, List, Optional

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmvireid.registry import MODELS
from ..utils.device import to_device
from .clip_vireid import CLIPVIReID

__all__ = ['EEES']

#: How to make the descriptions a dataset needs, shown in errors.
DESCRIPTIONS_HINT = (
    'Set descriptions="descriptions.json" in train_dataloader.dataset and '
    'create the file with `python tools/generate_descriptions.py CONFIG '
    '--backend vlm --model llava-hf/llava-1.5-7b-hf` (real data) or '
    '`--backend attributes` (toy data, from its attributes.json).')


@MODELS.register_module()
class EEES(CLIPVIReID):
    r"""EEES on the CLIP-VIReID stage core, two stages.

    * ``prompt``: as :class:`CLIPVIReID` — ID-specific learnable tokens
      shared by both modalities, learnt with SupCon(i2t) + SupCon(t2i) on
      cached image features of both modalities; both encoders frozen.
    * ``finetune``: the text encoder stays frozen and the identity text
      features ``T`` are fixed. The baseline losses (ID + triplet + i2t on
      ``T``, see :class:`CLIPVIReID`) are joined by the three losses of the
      abstract between every image and the features ``e_i`` of its own
      generated description, Explicit Semantics Embedding, Cross-View
      Semantics Compensation and Cross-Modality Semantics Purification:

      .. math::

          L = L_{base} + \lambda_{ese} L_{ESE}(v, e) +
              \lambda_{cvsc} L_{CVSC}(v, e) + \lambda_{cmsp} L_{CMSP}(v, e)

      (:class:`ESELoss`, :class:`CVSCLoss`, :class:`CMSPLoss`; the
      :math:`\lambda` are their ``loss_weight``; a loss set to None is off).

    **Which image feature meets the descriptions.** ``v`` is the projected
    CLIP feature (RN50: attention-pool output; ViT: class token @ proj), the
    one whose dimension is the text embedding's and which CLIP already
    aligns with text; ``semantic_feature='proj'`` takes it before the
    BNNeck (as the i2t loss does), ``'proj_bn'`` after it.

    **Description features.** On entering ``finetune`` the
    :class:`~mmvireid.engine.hooks.StageSwitchHook` calls
    :meth:`prepare_stage_data`, which encodes every train description once
    with the frozen text encoder (unique texts only, batched, progress bar)
    into the non-persistent buffer ``desc_feats [N, D]`` indexed by dataset
    index; a batch looks its rows up by each sample's ``sample_idx``. Text
    is never encoded per iteration, and checkpoints do not store the
    buffer (a resumed run re-encodes at stage entry).

    Test: image encoder only (:meth:`CLIPVIReID.extract_feat`); no text.

    Args:
        ese_loss (dict, optional): :class:`ESELoss` config, None to disable.
        cvsc_loss (dict, optional): :class:`CVSCLoss` config, None to
            disable.
        cmsp_loss (dict, optional): :class:`CMSPLoss` config, None to
            disable.
        semantic_feature (str): ``'proj'`` or ``'proj_bn'``, see above.
            Defaults to 'proj'.
        desc_batch_size (int): Descriptions per text-encoder call in
            :meth:`prepare_stage_data`. Defaults to 256.
        **kwargs: :class:`CLIPVIReID` arguments (encoders, prompt learner,
            head, ``num_classes``, baseline losses, test feature, ...).
    """

    STAGES = ('prompt', 'finetune')
    #: The stage whose losses read the description features.
    TEXT_STAGE = 'finetune'
    SEMANTIC_LOSSES = ('ese', 'cvsc', 'cmsp')

    def __init__(self,
                 ese_loss: Optional[dict] = dict(type='ESELoss'),
                 cvsc_loss: Optional[dict] = dict(type='CVSCLoss'),
                 cmsp_loss: Optional[dict] = dict(type='CMSPLoss'),
                 semantic_feature: str = 'proj',
                 desc_batch_size: int = 256,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if semantic_feature not in ('proj', 'proj_bn'):
            raise ValueError("EEES: semantic_feature must be 'proj' or "
                             f"'proj_bn', got {semantic_feature!r}")
        if desc_batch_size < 1:
            raise ValueError('EEES: desc_batch_size must be >= 1, got '
                             f'{desc_batch_size}')
        img_dim = self.image_encoder.proj_dim
        txt_dim = self.text_encoder.embed_dim
        if img_dim != txt_dim:
            raise ValueError(
                f'EEES: the projected image feature has {img_dim} dims but '
                f'the text encoder embeds to {txt_dim}; use the image and '
                'text towers of the same CLIP arch')
        self.semantic_feature = semantic_feature
        self.desc_batch_size = desc_batch_size
        self.ese_loss = MODELS.build(ese_loss) if ese_loss else None
        self.cvsc_loss = MODELS.build(cvsc_loss) if cvsc_loss else None
        self.cmsp_loss = MODELS.build(cmsp_loss) if cmsp_loss else None
        # e [N, D]: features of the N train descriptions, row = dataset
        # index. Derived data (frozen encoder), so never checkpointed.
        self.register_buffer('desc_feats', None, persistent=False)
        self._desc_fingerprint: Optional[str] = None

    @property
    def uses_descriptions(self) -> bool:
        """Whether any of ESE, CVSC and CMSP is on."""
        return any(
            getattr(self, f'{name}_loss') is not None
            for name in self.SEMANTIC_LOSSES)

    # ---------------------------------------------------------- descriptions
    def prepare_stage_data(self, stage_name: str, train_dataset) -> None:
        """Encode every train description once when ``finetune`` starts.

        Called by :class:`StageSwitchHook` after :meth:`switch_stage` on
        every stage entry. A second call with the same texts (e.g. the
        stage re-entered) reuses the buffer.

        Args:
            stage_name (str): The stage being entered.
            train_dataset: The image train set; ``get_data_info(i)['text']``
                must be the description of item ``i``.
        """
        if stage_name != self.TEXT_STAGE or not self.uses_descriptions:
            return
        texts = self.collect_descriptions(train_dataset)
        fingerprint = hashlib.sha1('\x00'.join(texts).encode()).hexdigest()
        if self.desc_feats is not None and \
                fingerprint == self._desc_fingerprint:
            return
        self.desc_feats = self.encode_descriptions(texts)
        self._desc_fingerprint = fingerprint

    @staticmethod
    def collect_descriptions(dataset) -> List[str]:
        """The ``text`` of every dataset item, in dataset order."""
        texts = []
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            text = info.get('text')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f'EEES needs a description for every train image, but '
                    f'item {idx} ("{info.get("img_path", "?")}") of '
                    f'{type(dataset).__name__} has none. '
                    f'{DESCRIPTIONS_HINT}')
            texts.append(text)
        return texts

    @torch.no_grad()
    def encode_descriptions(self, texts: List[str]) -> torch.Tensor:
        """Encode ``texts`` with the frozen text encoder: ``[N, D]``.

        Each distinct text is encoded once (attribute-template texts repeat
        across the views of an identity), in batches of
        ``desc_batch_size``, with a progress bar on rank 0.
        """
        unique = sorted(set(texts))
        index = {text: i for i, text in enumerate(unique)}
        print_log(
            f'EEES: encoding {len(unique)} distinct descriptions of '
            f'{len(texts)} train images with the frozen text encoder',
            logger='current')
        progress = ProgressBar(len(unique)) if get_rank() == 0 else None
        parts = []
        for start in range(0, len(unique), self.desc_batch_size):
            batch = unique[start:start + self.desc_batch_size]
            parts.append(self.text_encoder.encode_texts(batch).float())
            if progress is not None:
                progress.update(len(batch))
        if progress is not None:
            print()
        feats = torch.cat(parts)
        rows = torch.tensor([index[t] for t in texts], device=feats.device)
        return feats[rows]

    def description_features(self, data_samples: List) -> torch.Tensor:
        """Rows of ``desc_feats`` of a batch, by ``sample_idx``: ``[B, D]``.
        """
        if self.desc_feats is None:
            raise RuntimeError(
                'EEES: description features are missing. They are encoded '
                'by prepare_stage_data("finetune", train_dataset), which '
                'StageSwitchHook calls on entering the stage; call it '
                'yourself when driving the model by hand.')
        try:
            idx = [int(s.sample_idx) for s in data_samples]
        except AttributeError:
            raise AttributeError(
                'EEES: data samples carry no "sample_idx"; keep it in '
                'PackVIReIDInputs meta_keys') from None
        num = self.desc_feats.size(0)
        bad = [i for i in idx if not 0 <= i < num]
        if bad:
            raise IndexError(
                f'EEES: sample_idx {bad[0]} is outside the {num} encoded '
                'descriptions; the train set changed after '
                'prepare_stage_data()')
        # built on the host, copied without blocking
        return self.desc_feats[to_device(
            torch.tensor(idx), self.desc_feats.device)]

    # ---------------------------------------------------------------- losses
    def finetune_losses(self, out: dict,
                        data_samples: List) -> Dict[str, torch.Tensor]:
        """The baseline fine-tuning terms (:class:`CLIPVIReID`) plus ESE,
        CVSC and CMSP on the same forward outputs."""
        losses = super().finetune_losses(out, data_samples)
        if not self.uses_descriptions:
            return losses
        branch = 'feats' if self.semantic_feature == 'proj' else 'bn_feats'
        img = out[branch][1]  # the projected branch
        text = self.description_features(data_samples).to(img.dtype)
        # host labels / modalities: the losses group them there, no sync
        labels = self.labels_of(data_samples)
        modalities = self.modalities_of(data_samples)
        for name in self.SEMANTIC_LOSSES:
            loss_fn = getattr(self, f'{name}_loss')
            if loss_fn is not None:
                losses[f'loss_{name}'] = loss_fn(img, text, labels,
                                                 modalities)
        return losses
