# Config tutorial, example 1 the other way: ModifiedResNet -> ViT, on the
# toy data. The toy config's tiny ResNet is replaced by a tiny random-init
# ViT (2 layers, width 64, 8x8 patches on the 64x32 toy input), so the whole
# recipe still runs on a CPU:
#
#   python tools/train.py configs/examples/clip_vireid_vit_toy.py
#
# For the real ViT-B/16 see configs/clip_vireid_vit-b16_sysu.py.
_base_ = ['../clip_vireid_toy.py']

tiny_vit_arch = dict(
    embed_dim=64,
    vision_cfg=dict(
        image_size=(64, 32), patch_size=8, width=64, layers=2,
        head_width=32),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='CLIPImageEncoder',
        arch=tiny_vit_arch,
        pretrained=None,
        input_size=(64, 32),
        stride_size=8),  # < patch size would give overlapping patches
    text_encoder=dict(
        _delete_=True,
        type='CLIPTextEncoder',
        arch=tiny_vit_arch,
        pretrained=None),
    prompt_learner=dict(embed_width=64))
