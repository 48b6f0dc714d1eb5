# EEES (docs/en/methods/eees.md) on a CSDN-style OpenAI CLIP RN50: 288x144
# input, modality-specific stems (visible / infrared copies of
# conv1..avgpool) in front of a shared body, layer4 stride 1, GeM + BNNeck
# head. The baseline fine-tuning losses follow CSDN (plain CE, WRT triplet);
# ESE, CVSC and CMSP work on the projected feature v (attention-pool output,
# 1024-d = the text embedding) against the frozen features of each image's
# own description.
# A ViT-B/16 is a swap of clip_arch (and input_size / stride_size).
_base_ = ['./clip_vireid_rn50.py']
# The CLIP RN50 of clip_vireid_rn50.py (ImageNet normalisation, 288x144,
# layer4 stride 1, channels-last; stage "prompt": one set of ID tokens
# shared by both modalities) with EEES's parts.
model = dict(
    type='EEES',
    image_encoder=dict(modality_specific_stem=True),
    # CSDN's heads: GeM on the layer4 map, trainable BN biases, a biased
    # classifier on the projected branch.
    head=dict(
        type='BNNeckHead',
        pool='gem',
        bn_bias_trainable=True,
        classifier_bias=[False, True]),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.0),
    # CSDN weighs i2t 0.05 (visible) / 0.10 (infrared); one i2t term here,
    # for both modalities
    i2t_loss=dict(type='ImageTextCELoss', epsilon=0.0, loss_weight=0.1),
    # CSDN's WRT triplet on f and v only (not CLIP-ReID's third, layer3
    # term), weighted 0.15 as there
    triplet_loss=dict(_delete_=True, type='WRTTripletLoss', loss_weight=0.15),
    triplet_features=('feat', 'proj'),
    # Explicit semantics (ESE, CVSC, CMSP); each loss_weight is its lambda,
    # chosen in docs/en/methods/eees.md. None switches a loss off
    # (configs/eees_ablation/).
    ese_loss=dict(
        type='ESELoss',
        temperature=0.07,
        symmetric=True,
        cross_modal_positives=True,
        loss_weight=1.0),
    cvsc_loss=dict(
        type='CVSCLoss',
        temperature=0.1,
        distill_weight=1.0,
        contrast_weight=1.0,
        loss_weight=1.0),
    # detach_intra: the intra-modality distance is the (constant) target
    cmsp_loss=dict(
        type='CMSPLoss',
        anchor='both',
        level='sample',
        detach_intra=True,
        loss_weight=20.0),
    semantic_feature='proj',
    desc_batch_size=256,
    # Test as CSDN: concat(L2(BN(GeM f)), L2(v)) and the flipped image's.
    test_feature='bn_l2',
    flip_test=True)
