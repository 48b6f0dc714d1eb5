# Config tutorial, example 1 the other way: ViT -> ModifiedResNet, on the
# toy data. The toy config's tiny ViT is replaced by a tiny random-init
# ModifiedResNet (the RN50 architecture with one block per stage and width
# 16), so the whole recipe still runs on a CPU:
#
#   python tools/train.py configs/examples/clip_vireid_rn_toy.py
#
# For the real RN50, set arch='RN50' and pretrained='openai' in both
# encoders (and embed_width=512), as configs/_base_/models/clip_vireid_rn50.py.
_base_ = ['../clip_vireid_toy.py']

tiny_rn_arch = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(128, 64), layers=(1, 1, 1, 1), width=16, head_width=16),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='CLIPImageEncoder',
        arch=tiny_rn_arch,
        pretrained=None,
        input_size=(128, 64),
        last_stride=1),  # layer4 at stride 1, as CLIP-ReID / CSDN
    text_encoder=dict(
        _delete_=True,
        type='CLIPTextEncoder',
        arch=tiny_rn_arch,
        pretrained=None),
    prompt_learner=dict(embed_width=64))
