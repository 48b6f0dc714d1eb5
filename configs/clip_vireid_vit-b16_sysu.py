# CLIP-VIReID with an OpenAI CLIP ViT-B/16 on SYSU-MM01: CLIP-ReID's ViT
# recipe (configs/person/vit_clipreid.yml) with the README's SIE + OLP
# options (MODEL.SIE_CAMERA True, MODEL.SIE_COE 1.0, MODEL.STRIDE_SIZE
# [12, 12]), moved to two modalities. Data, evaluation and the stage core
# are the RN50 recipe's (clip_vireid_sysu.py).
#
#   python tools/train.py configs/clip_vireid_vit-b16_sysu.py
_base_ = ['./clip_vireid_sysu.py']

clip_arch = 'ViT-B-16'
model = dict(
    # PIXEL_MEAN = PIXEL_STD = 0.5 (CLIP-ReID's ViT), in 0..255 units
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3),
    image_encoder=dict(
        _delete_=True,  # drop RN50-only keys (last_stride, channels_last)
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained='openai',
        input_size=(288, 144),  # the data pipeline's (H, W)
        stride_size=12,  # overlapping patches (OLP): a 23 x 11 grid
        # SIE: a camera vector on the class token; SYSU-MM01 numbers its
        # cameras 1..6, so the table has 7 rows (row 0 unused)
        camera_embedding=dict(num_cameras=7, coe=1.0)),
    text_encoder=dict(
        _delete_=True, type='CLIPTextEncoder', arch=clip_arch,
        pretrained='openai'),
    # the head and the prompt learner read their widths from the encoders
    # (768-d class token, 512-d projection)
    id_loss=dict(loss_weight=0.25))

# the plan's lengths change (lists are replaced whole, so both stages)
train_cfg = dict(stages=[
    dict(name='prompt', epochs=120, validate=False,
         feature_cache=dict(batch_size=64, extract_batch_size=128,
                            num_workers=4)),
    dict(name='finetune', epochs=60),
])

optim_wrapper = dict(
    prompt=dict(optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4)),
    finetune=dict(
        optimizer=dict(type='Adam', lr=5e-6, weight_decay=1e-4),
        paramwise_cfg=dict(custom_keys={'bias': dict(lr_mult=2.0)})))

param_scheduler = dict(
    # t_initial=None: the stage length (120 epochs)
    prompt=[dict(type='TimmCosineLR', t_initial=None, lr_min=1e-6,
                 warmup_t=5, warmup_lr_init=1e-5, t_offset=1)],
    finetune=[
        dict(type='WarmupMultiStepLR', milestones=[30, 50], gamma=0.1,
             warmup_factor=0.1, warmup_iters=10, t_offset=1, by_epoch=True)
    ])
