# Config tutorial, example 1: swap the backbone, RN50 -> ViT-B/16.
# Everything else (data, stages, losses, schedules) is inherited from the
# RN50 recipe. The encoder dicts are replaced (_delete_=True) rather than
# merged, so no RN50-only key (last_stride) leaks into the ViT.
#
#   python tools/train.py configs/examples/clip_vireid_vit-b16_sysu.py
_base_ = ['../clip_vireid_sysu.py']

clip_arch = 'ViT-B-16'
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='CLIPImageEncoder',
        arch=clip_arch,
        pretrained='openai',
        input_size=(288, 144),  # the data pipeline's (H, W)
        stride_size=16),  # < 16 gives overlapping patches (slower)
    text_encoder=dict(
        _delete_=True,
        type='CLIPTextEncoder',
        arch=clip_arch,
        pretrained='openai'),
    # ViT-B/16's text width is 512, as RN50's: the prompt learner and the
    # head infer the other widths from the encoders.
    prompt_learner=dict(embed_width=512))
