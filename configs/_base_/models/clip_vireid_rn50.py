# CLIP-VIReID with an OpenAI CLIP RN50 (layer4 stride 1), 288x144 input.
clip_arch = 'RN50'
clip_pretrained = 'openai'  # an open_clip tag, or a local file path
model = dict(
    type='CLIPVIReID',
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
        channels_last=True),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_pretrained),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=512),
    head=dict(type='BNNeckHead', pool='avg'),
    prompt_loss=dict(type='SupConLoss'),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.1),
    triplet_loss=dict(type='HardTripletLoss', margin=0.3),
    # each loss's weight is its loss_weight (1 unless set)
    i2t_loss=dict(type='ImageTextCELoss', epsilon=0.1),
    test_feature='before_bn',
    flip_test=False)
