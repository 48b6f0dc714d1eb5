# EEES (methods.md §2) on a CSDN-style OpenAI CLIP RN50: 288x144 input,
# modality-specific stems (visible / infrared copies of conv1..avgpool) in
# front of a shared body, layer4 stride 1, GeM + BNNeck head. The baseline
# fine-tuning losses follow CSDN (plain CE, WRT triplet); ESE, CVSC and CMSP
# work on the projected feature v (attention-pool output, 1024-d = the text
# embedding) against the frozen features of each image's own description.
# A ViT-B/16 is a swap of clip_arch (and input_size / stride_size).
clip_arch = 'RN50'
clip_pretrained = 'openai'  # an open_clip tag, or a local file path
model = dict(
    type='EEES',
    num_classes=395,
    data_preprocessor=dict(
        type='VIReIDDataPreprocessor',
        # ImageNet statistics, as the VI-ReID references normalise RN50 input
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    image_encoder=dict(
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained=clip_pretrained,
        input_size=(288, 144),
        last_stride=1,
        # NHWC conv trunk: cuDNN's tensor-core kernels under AMP are NHWC
        # ones (same maths; channels_last=False gives the reference layout)
        channels_last=True,
        modality_specific_stem=True),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_pretrained),
    # Stage "prompt": one set of ID tokens shared by both modalities.
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=512),
    # CSDN's heads: GeM on the layer4 map, trainable BN biases, a biased
    # classifier on the projected branch.
    head=dict(
        type='BNNeckHead',
        pool='gem',
        bn_bias_trainable=True,
        classifier_bias=[False, True]),
    prompt_loss=dict(type='SupConLoss'),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.0),
    triplet_loss=dict(type='WRTTripletLoss'),
    i2t_loss=dict(type='ImageTextCELoss'),
    # CSDN weighs triplet 0.15 and i2t 0.05 (visible) / 0.10 (infrared);
    # one i2t weight here, for both modalities.
    loss_weights=dict(id=1.0, triplet=0.15, i2t=0.1),
    # Explicit semantics; the loss_weight of each is its lambda (1.0 each,
    # chosen on the toy ablation, docs/en/methods/eees.md). Set a loss to
    # None to switch it off (configs/eees_ablation/).
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
    cmsp_loss=dict(
        type='CMSPLoss', anchor='both', level='sample', loss_weight=1.0),
    semantic_feature='proj',
    desc_batch_size=256,
    # Test as CSDN: concat(L2(BN(GeM f)), L2(v)) and the flipped image's.
    test_feature='bn_l2',
    flip_test=True)
