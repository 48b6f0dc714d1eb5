# CSDN (nengdong96/CSDN) with an OpenAI CLIP RN50, 288x144 input: the model of
# the public code (see docs/en/methods/csdn.md) and its two-view train
# pipeline.
_base_ = ['./clip_vireid_rn50.py']
# The CLIP RN50 of clip_vireid_rn50.py (ImageNet normalisation, 288x144,
# layer4 stride 1, channels-last) with CSDN's parts.
model = dict(
    type='CSDN',
    # image_encoder1 / image_encoder2 of the reference
    image_encoder=dict(modality_specific_stem=True),
    # (the base's prompt_learner is built twice: PromptLearner1 for visible,
    # PromptLearner2 for infrared)
    # AttentionFusion(1024): numerically t_vis + W_c v(t_ir)
    fusion=dict(type='SIIFusion', embed_dim=1024, dropout=0.1,
                key_tokens='ir'),
    # Classifier (GeM, BN with trainable bias, bias-free linear) and
    # Classifier2 (BN, bias-free linear) on the projected feature
    head=dict(
        type='BNNeckHead',
        pool='gem',
        bn_bias_trainable=True,
        classifier_bias=False),
    id_loss=dict(type='LabelSmoothCELoss', epsilon=0.0),  # nn.CrossEntropyLoss
    # loss_weight 0.15 / 0.05 / 0.10: --lambda1/2/3 of the reference
    triplet_loss=dict(_delete_=True, type='WRTTripletLoss', loss_weight=0.15),
    triplet_features=('feat', 'proj'),
    # i2t per modality (the base's i2t_loss is one term: dropped), plain
    # nn.CrossEntropyLoss as well (the base's 0.1 smoothing is CLIP-ReID's)
    i2t_loss=None,
    i2t_vis_loss=dict(type='ImageTextCELoss', epsilon=0.0, loss_weight=0.05),
    i2t_ir_loss=dict(type='ImageTextCELoss', epsilon=0.0, loss_weight=0.10),
    # MSEL(4): num_pos is the sampler's num_instances. The 2024-07 release:
    # --cfg-options model.msel_loss=None model.flip_test=False
    msel_loss=dict(type='MSELLoss', num_pos=4),
    test_feature='bn_l2',
    flip_test=True,
    # quirks of the public code, each switchable (docs/en/methods/csdn.md)
    stem_inner_relu=False,
    train_mode_cache_stages=['fusion'],
    class_text_dropout=True)

# Train pipeline of the reference's three transforms: visible view 1
# (pad 10, random crop, flip, channel random erasing), visible view 2 (the
# same, independently drawn, then ChannelExchange(gray=2)) and infrared (view
# 1 + ChannelAdapGray). View 2 is computed first from the resized image and
# stored under 'img_view2'; the model appends it to the batch. The channel
# transforms copy *normalised* values, as the reference does on its tensors.
imagenet_norm = dict(
    norm_mean=[0.485, 0.456, 0.406], norm_std=[0.229, 0.224, 0.225])
csdn_view_augs = [
    dict(type='mmpretrain.RandomCrop', crop_size=(288, 144), padding=10),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ChannelRandomErasing', prob=0.5),
]
csdn_train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(144, 288), keep_ratio=False, backend='pillow',
         interpolation='lanczos'),
    dict(type='ModalityDispatch',
         vis=[
             dict(type='KeyMapper',
                  mapping=dict(img='img'),
                  remapping=dict(img='img_view2'),
                  transforms=csdn_view_augs + [
                      dict(type='ChannelExchange', gray=2, **imagenet_norm)
                  ]),
         ] + csdn_view_augs,
         ir=csdn_view_augs + [
             dict(type='ChannelAdapGray', prob=0.5, **imagenet_norm)
         ]),
    dict(type='PackVIReIDInputs', algorithm_keys=['img_view2']),
]
