# A tiny CLIP with the RN50 layout (ModifiedResNet, one block per
# stage, width 8, attention pooling) at 64x32 input and a 2-layer, width-64
# text tower: it trains on two CPU cores, and the demo and tests use it. The
# model is clip_vireid_tiny_vit.py's with the image encoder swapped.
_base_ = ['./clip_vireid_tiny_vit.py']

tiny_rn_arch = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=(64, 32), layers=(1, 1, 1, 1), width=8),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
# Pretrained on synthetic image-caption pairs by
#   python tools/pretrain_toy_clip.py --arch tiny_rn --out data/toy_clip/tiny_rn.pth
# (demo/toy_demo.sh runs it), loaded like real CLIP weights.
toy_clip_weights = '{{$MMVIREID_TOY_CLIP_DIR:data/toy_clip}}/tiny_rn.pth'
# _delete_: replace the ViT arch dicts instead of merging into them
clip_arch = dict(tiny_rn_arch, _delete_=True)
model = dict(
    image_encoder=dict(
        _delete_=True,
        type='CLIPImageEncoder',
        arch=tiny_rn_arch,
        pretrained=toy_clip_weights,
        input_size=(64, 32),
        last_stride=1),
    text_encoder=dict(
        arch=dict(tiny_rn_arch, _delete_=True), pretrained=toy_clip_weights))
