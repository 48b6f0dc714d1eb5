# Copyright (c) mmvireid contributors. All rights reserved.
"""An example of a new method: CLIP-VIReID with a third training stage.

The walkthrough is docs/en/user_guides/new_method.md; the config is
configs/examples/clip_vireid_toy_3stage.py.
"""
from typing import Dict, List

import torch

from mmvireid.models.reid import CLIPVIReID
from mmvireid.registry import MODELS

__all__ = ['CLIPVIReIDAlign']


@MODELS.register_module()
class CLIPVIReIDAlign(CLIPVIReID):
    """CLIP-VIReID plus an ``align`` stage after fine-tuning.

    Stages ``prompt`` and ``finetune`` are CLIPVIReID's. In ``align`` the
    encoders are frozen (they run under ``torch.no_grad()``; the stage's
    optimiser holds only the head, see the config) and the BNNeck head is
    tuned with the identity loss on both branches plus MSEL on their BN
    features, which pulls each identity's cross-modality distances towards
    its intra-modality ones::

        L_align = w_id * sum_b ID(logits_b) + w_msel * sum_b MSEL(bn_feat_b)

    (each ``w`` the ``loss_weight`` of its loss config, applied once to the
    sum over the branches ``b``).

    MSEL needs the cross-modal identity sampler's batch layout (P identities
    x K visible images, then the same identities x K infrared images), which
    the image loader of the stage provides.

    Args:
        msel_loss (dict): The MSEL config; ``num_pos`` must equal the
            sampler's ``num_instances``. Defaults to
            ``dict(type='MSELLoss', num_pos=4)``.
        **kwargs: :class:`CLIPVIReID` arguments.
    """

    STAGES = CLIPVIReID.STAGES + ('align', )

    def __init__(self,
                 *args,
                 msel_loss: dict = dict(type='MSELLoss', num_pos=4),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.msel_loss = MODELS.build(msel_loss)

    def loss_align(self, inputs: torch.Tensor,
                   data_samples: List) -> Dict[str, torch.Tensor]:
        """Head-only tuning on images of both modalities."""
        labels = self.labels_of(data_samples)
        with torch.no_grad():  # frozen encoders: no activations kept
            feat, proj = self.image_features(inputs, data_samples)
        out = self.head([feat, proj])
        # a sequence of inputs: the loss summed over them, weighted once
        return dict(
            loss_id=self.id_loss(out['logits'], labels),
            loss_msel=self.msel_loss(out['bn_feats'], labels))
