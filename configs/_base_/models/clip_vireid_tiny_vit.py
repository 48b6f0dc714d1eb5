# A tiny CLIP (2-layer ViT, width 64, 128x64 input) that trains on two CPU
# cores: the toy recipes and the tests use it. Same model class and heads as
# the real recipes; only the architecture dict differs.
clip_arch = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(128, 64), patch_size=16, width=64, layers=2,
        head_width=32),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
# Pretrained on synthetic image-caption pairs by
#   python tools/pretrain_toy_clip.py --arch tiny_vit --out data/toy_clip/tiny_vit.pth
# loaded like real CLIP weights.
toy_clip_weights = '{{$MMVIREID_TOY_CLIP_DIR:data/toy_clip}}/tiny_vit.pth'
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
        pretrained=toy_clip_weights,
        input_size=(128, 64),
        stride_size=16),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=toy_clip_weights),
    prompt_learner=dict(
        type='IDPromptLearner',
        template='A photo of a X X X X person.',
        num_ctx=4,
        embed_width=64),
    head=dict(type='BNNeckHead', pool='avg'),
    prompt_loss=dict(type='SupConLoss'),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.1),
    triplet_loss=dict(type='HardTripletLoss', margin=0.3),
    i2t_loss=dict(type='ImageTextCELoss', epsilon=0.1),
    test_feature='before_bn')
