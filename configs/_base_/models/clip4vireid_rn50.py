# CLIP4VI-ReID (docs/en/methods/clip4vireid.md) with an OpenAI
# CLIP RN50 (layer4 stride 1), 288x144 input, one image encoder shared by both
# modalities. ViT-B/16 is a swap of clip_arch to 'ViT-B-16' (plus stride_size;
# both CLIPs embed text tokens in 512, so embed_width stays).
_base_ = ['./clip_vireid_rn50.py']
# The CLIP RN50 of clip_vireid_rn50.py (ImageNet normalisation, 288x144,
# layer4 stride 1, channels-last, the CLIP-ReID prompt, avg-pool BNNeck head,
# LS-CE + hard triplet, before-BN test feature) with CLIP4VI-ReID's parts.
model = dict(
    type='CLIP4VIReID',
    # the method's point: ONE encoder adapts to infrared through text
    image_encoder=dict(modality_specific_stem=False),
    # IFE neck: residual MLP on the IR projected feature before its i2t term
    # (in_channels filled in from the encoder); ife_neck=None removes it.
    ife_neck=dict(type='IFENeck', hidden_channels=256, act='relu',
                  dropout=0.0, pre_norm=True, zero_init_last=True),
    # HSA: KL between the visible and IR similarity distributions over the
    # batch identities' text features; align_loss=None removes it.
    align_loss=dict(type='CrossModalAlignmentLoss', temperature=1.0,
                    normalize=False, mode='symmetric'),
    # i2t per modality (the base's i2t_loss is one term: dropped), with its
    # 0.1 label smoothing; the infrared term weighted up
    i2t_loss=None,
    i2t_vis_loss=dict(type='ImageTextCELoss', epsilon=0.1),
    i2t_ir_loss=dict(type='ImageTextCELoss', epsilon=0.1, loss_weight=2.0),
    supcon_t2i_loss=dict(type='SupConLoss'))
