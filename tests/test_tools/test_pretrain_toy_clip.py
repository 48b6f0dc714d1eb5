# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/pretrain_toy_clip.py: the toy CLIP has image-text meaning.

The full default pretraining runs once (about 2-4 minutes), with its default
two threads: the weights depend on the thread count, and two is what the
demo uses, so these are the demo's weights. They are loaded the way the toy
configs load them: through ``pretrained=`` of CLIPImageEncoder /
CLIPTextEncoder built from the config.
The checks use the test identities of a toy ReID dataset, which the
pretraining corpus never contains.
"""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from toy_utils import REPO_ROOT, make_toy_dataset, pretrain_toy_clip

from mmvireid.models.utils.open_clip_builder import load_clip_state_dict
from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
import pretrain_toy_clip as ptc  # noqa: E402
from make_toy_vireid import make_identity  # noqa: E402
from toy_captions import caption, has_colour_word  # noqa: E402

register_all_modules()
#: Captions of the retrieval check: every attribute named, phrasing drawn.
CAPTION_STYLE = 'full'


@pytest.fixture(scope='module')
def held_out_toy(tmp_path_factory):
    """A toy SYSU dataset; its test ids are the held-out people."""
    root = tmp_path_factory.mktemp('toy') / 'sysu'
    return make_toy_dataset('sysu', root, num_ids=150, imgs_per_cam=1,
                            seed=3)


def _encoders(weights: str):
    """Image and text encoders of configs/clip_vireid_toy.py, loading
    ``weights`` through their ``pretrained=`` (the real loading code)."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/clip_vireid_toy.py'))
    image_cfg = cfg.model.image_encoder.copy()
    image_cfg.update(pretrained=weights)
    text_cfg = cfg.model.text_encoder.copy()
    text_cfg.update(pretrained=weights)
    image, text = MODELS.build(image_cfg), MODELS.build(text_cfg)
    image.init_weights()
    text.init_weights()
    return image.eval(), text.eval(), cfg


def _test_images(root: str, cfg):
    """Every test-split image of the toy data as the model sees it, with
    its person, modality and a description-style caption."""
    test_ids = [
        int(p) for p in open(osp.join(root, 'exp',
                                      'test_id.txt')).read().split(',')
    ]
    mean = cfg.model.data_preprocessor.mean
    std = cfg.model.data_preprocessor.std
    height, width = cfg.model.image_encoder.input_size
    rng = np.random.default_rng(0)
    images, person, modality, texts = [], [], [], []
    for cam in range(1, 7):
        mod = 'ir' if cam in (3, 6) else 'vis'
        for pid in test_ids:
            folder = osp.join(root, f'cam{cam}', f'{pid:04d}')
            if not osp.isdir(folder):
                continue
            ident = make_identity(pid, 3)
            for name in sorted(os.listdir(folder)):
                img = Image.open(osp.join(folder, name)).convert('RGB')
                img = img.resize((width, height), Image.LANCZOS)
                images.append(np.asarray(img))
                person.append(pid)
                modality.append(mod)
                texts.append(caption(ident, mod, rng, style=CAPTION_STYLE))
    x = ptc.to_tensor(np.stack(images), mean, std)
    return x, np.asarray(person), np.asarray(modality), texts


def test_pretrained_toy_clip_has_semantics(tmp_path, held_out_toy):
    """One test (one pytest-xdist worker) for everything that needs the full
    pretraining, so a parallel run pretrains once."""
    path = str(tmp_path / 'tiny_rn.pth')
    report = pretrain_toy_clip('tiny_rn', path)

    # it learnt, and wrote a plain open_clip state dict plus its report
    assert osp.isfile(path) and osp.isfile(path + '.json')
    assert report['last_loss'] < 0.85 * report['first_loss']
    state = load_clip_state_dict(path)
    assert 'visual.attnpool.c_proj.weight' in state
    assert 'token_embedding.weight' in state and 'logit_scale' in state
    assert report['pid_range'][0] > ptc.CORPUS_PID_OFFSET

    image, text, cfg = _encoders(path)
    x, person, modality, texts = _test_images(held_out_toy, cfg)
    with torch.no_grad():
        # image features of different people are far apart (random init:
        # ~0.9999)
        checks = ptc.semantic_checks(lambda batch: image(batch)[1],
                                     text.encode_texts, x, person, texts)
        assert checks['mean_cross_id_cosine'] <= 0.9, checks
        # caption -> image retrieval far above chance; measured ~6.4x both,
        # ~7.4x visible, ~4.6x infrared (50 people)
        for modalities, times_chance in ((('vis', 'ir'), 5), (('vis', ), 5),
                                         (('ir', ), 3)):
            keep = np.isin(modality, modalities)
            checks = ptc.semantic_checks(
                lambda batch: image(batch)[1], text.encode_texts,
                x[torch.from_numpy(keep)], person[keep],
                [t for t, k in zip(texts, keep) if k])
            assert checks['top1_over_chance'] >= times_chance, (modalities,
                                                                checks)


def test_random_init_is_collapsed_for_contrast(held_out_toy):
    """The same check on the random-init tiny CLIP: what the pretraining
    fixes."""
    image, text, cfg = _encoders(None)
    x, person, _, texts = _test_images(held_out_toy, cfg)
    with torch.no_grad():
        checks = ptc.semantic_checks(lambda batch: image(batch)[1],
                                     text.encode_texts, x, person, texts)
    assert checks['mean_cross_id_cosine'] > 0.95


def test_pretraining_is_deterministic(tmp_path):
    a, b = str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')
    kwargs = dict(num_ids=24, steps=4, batch_size=12, eval_ids=4, workers=1)
    pretrain_toy_clip('tiny_vit', a, **kwargs)
    pretrain_toy_clip('tiny_vit', b, **kwargs)
    sa, sb = torch.load(a), torch.load(b)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # another seed gives other weights
    c = str(tmp_path / 'c.pth')
    pretrain_toy_clip('tiny_vit', c, seed=1, **kwargs)
    assert not torch.equal(sa['visual.proj'], torch.load(c)['visual.proj'])


def test_pretraining_refuses_to_overwrite(tmp_path):
    out = tmp_path / 'w.pth'
    out.write_bytes(b'keep me')
    with pytest.raises(FileExistsError, match='--overwrite'):
        pretrain_toy_clip('tiny_rn', str(out), num_ids=8, steps=1,
                          batch_size=4, eval_ids=2, workers=1)
    assert out.read_bytes() == b'keep me'
    with pytest.raises(ValueError, match='--arch'):
        ptc.arch_settings('tiny_swin')


def test_infrared_captions_never_name_a_colour():
    rng = np.random.default_rng(0)
    for pid in range(1, 60):
        ident = make_identity(pid, 0)
        pose = dict(side=1.0, spread=0.05)
        for style in ('pretrain', 'description'):
            ir = caption(ident, 'ir', rng, pose, style=style)
            assert not has_colour_word(ir), ir
        # the switch that injects a wrong colour does name one
        noisy = caption(ident, 'ir', rng, pose, style='description',
                        ir_colour_noise=True)
        assert has_colour_word(noisy)
        assert ident.upper_color not in noisy.split()
    # visible captions name colours most of the time
    vis = [
        caption(make_identity(p, 0), 'vis', rng, style='pretrain')
        for p in range(1, 60)
    ]
    assert sum(map(has_colour_word, vis)) > 0.8 * len(vis)
    # and vary: many phrasings of one person
    one = {
        caption(make_identity(1, 0), 'vis', rng, style='pretrain')
        for _ in range(30)
    }
    assert len(one) > 20
