# CLIP4VI-ReID (methods.md §3, docs/en/methods/clip4vireid.md) with an OpenAI
# CLIP RN50 (layer4 stride 1), 288x144 input, one image encoder shared by both
# modalities. ViT-B/16 is a swap of clip_arch to 'ViT-B-16' (plus stride_size;
# both CLIPs embed text tokens in 512, so embed_width stays).
clip_arch = 'RN50'
clip_pretrained = 'openai'  # an open_clip tag, or a local file path
model = dict(
    type='CLIP4VIReID',
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
        # the method's point: ONE encoder adapts to infrared through text
        modality_specific_stem=False),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_pretrained),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=512),
    head=dict(type='BNNeckHead', pool='avg'),
    # IFE neck: residual MLP on the IR projected feature before its i2t term
    # (in_channels filled in from the encoder); ife_neck=None removes it.
    ife_neck=dict(type='IFENeck', hidden_channels=256, act='relu',
                  dropout=0.0, pre_norm=True, zero_init_last=True),
    # HSA: KL between the visible and IR similarity distributions over the
    # batch identities' text features; align_loss=None removes it.
    align_loss=dict(type='CrossModalAlignmentLoss', temperature=1.0,
                    normalize=False, mode='symmetric'),
    prompt_loss=dict(type='SupConLoss'),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.1),
    triplet_loss=dict(type='HardTripletLoss', margin=0.3),
    i2t_loss=dict(type='ImageTextCELoss'),
    loss_weights=dict(id=1.0, triplet=1.0, i2t_vis=1.0, i2t_ir=2.0,
                      supcon_t2i=1.0, align=1.0),
    test_feature='before_bn',
    flip_test=False)
