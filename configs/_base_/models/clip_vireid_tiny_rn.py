# A tiny random-init CLIP with the RN50 layout (ModifiedResNet, one block per
# stage, width 8, attention pooling) at 64x32 input and a 2-layer, width-64
# text tower: it trains on two CPU cores, and the demo and tests use it. Same
# model class, heads and losses as the real recipes; only the arch differs.
clip_arch = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=(64, 32), layers=(1, 1, 1, 1), width=8),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    type='CLIPVIReID',
    num_classes=43,
    data_preprocessor=dict(
        type='VIReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    image_encoder=dict(
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained=None,
        input_size=(64, 32),
        last_stride=1),
    text_encoder=dict(type='CLIPTextEncoder', arch=clip_arch, pretrained=None),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=64),
    head=dict(type='BNNeckHead', pool='avg'),
    prompt_loss=dict(type='SupConLoss'),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.1),
    triplet_loss=dict(type='HardTripletLoss', margin=0.3),
    i2t_loss=dict(type='ImageTextCELoss'),
    test_feature='before_bn')
