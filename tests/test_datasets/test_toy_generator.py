# Copyright (c) mmvireid contributors. All rights reserved.
"""The toy generator: determinism, real layouts, and learnable content."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from mmvireid.datasets import LLCMDataset, RegDBDataset, SYSUMM01Dataset

GEN_PATH = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'dataset_converters',
    'make_toy_vireid.py')


def _load_generator():
    spec = importlib.util.spec_from_file_location('make_toy_vireid', GEN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
COLOUR_WORDS = set(gen.PALETTE)


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = osp.join(dirpath, n)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _make(tmp_path, layout, name=None, **kw):
    out = str(tmp_path / (name or layout))
    kw.setdefault('num_ids', 6)
    kw.setdefault('imgs_per_cam', 2)
    gen.make_toy_dataset(layout, out, verbose=False, **kw)
    return out


@pytest.mark.parametrize('layout', ['sysu', 'regdb', 'llcm'])
def test_same_seed_same_bytes(tmp_path, layout):
    a = _files(_make(tmp_path, layout, 'a', seed=3))
    b = _files(_make(tmp_path, layout, 'b', seed=3))
    c = _files(_make(tmp_path, layout, 'c', seed=4))
    assert a == b
    images = [k for k in a if k.endswith('.jpg')]
    assert len(images) > 20
    differ = [k for k in images if k in c and a[k] != c[k]]
    assert len(differ) > len([k for k in images if k in c]) // 2


def test_sysu_layout_and_dataset(tmp_path):
    root = _make(tmp_path, 'sysu', num_ids=12, imgs_per_cam=2)
    ids = {}
    for name in ('train', 'val', 'test'):
        with open(osp.join(root, 'exp', f'{name}_id.txt')) as f:
            ids[name] = [int(x) for x in f.readline().split(',')]
    assert sorted(sum(ids.values(), [])) == list(range(1, 13))
    assert (len(ids['test']), len(ids['val'])) == (4, 1)
    pattern = re.compile(r'^cam[1-6]/\d{4}/\d{4}\.jpg$')
    images = [k for k in _files(root) if k.endswith('.jpg')]
    assert all(pattern.match(k.replace(os.sep, '/')) for k in images)

    train = SYSUMM01Dataset(
        root, split='train', descriptions='descriptions.json')
    assert train.num_classes == 8
    items = train.get_data_list()
    assert {d['modality'] for d in items} == {'vis', 'ir'}
    attrs = json.load(open(osp.join(root, 'attributes.json')))
    assert set(attrs) == {str(p) for p in range(1, 13)}
    assert set(attrs['1']) == {
        'gender', 'hair', 'upper_color', 'upper_pattern', 'lower_color',
        'shoes', 'bag'
    }
    named = []
    for d in items:
        pid = str(int(osp.basename(osp.dirname(d['img_path']))))
        words = set(re.findall(r'[a-z]+', d['text']))
        if d['modality'] == 'ir':
            assert not words & COLOUR_WORDS, d['text']
        else:
            named.append(attrs[pid]['upper_color'] in words)
    # one text per image, as a captioner writes them: mostly right, some
    # attributes left out, many phrasings
    assert 0.5 < np.mean(named) < 1.0
    texts = [d['text'] for d in items]
    assert len(set(texts)) > 0.8 * len(texts)
    query = SYSUMM01Dataset(root, split='query')
    gallery = SYSUMM01Dataset(root, split='gallery', trial=1)
    assert set(query.get_labels()) == set(ids['test'])
    assert set(gallery.get_labels()) <= set(ids['test'])
    # One gallery image per (id, camera) folder.
    pairs = list(zip(gallery.get_labels(), gallery.get_cam_ids()))
    assert len(pairs) == len(set(pairs))

    vis = np.asarray(Image.open(items[0]['img_path']))
    ir = np.asarray(Image.open(items[-1]['img_path'])).astype(int)
    assert vis.shape == ir.shape == (128, 64, 3)
    # Infrared images are grey, up to JPEG chroma noise.
    assert np.abs(ir[..., 0] - ir[..., 1]).mean() < 2
    assert np.abs(vis[..., 0] - vis[..., 2]).mean() > 10


def test_sysu_multi_shot_needs_ten(tmp_path):
    root = _make(tmp_path, 'sysu', num_ids=4, imgs_per_cam=10)
    gallery = SYSUMM01Dataset(root, split='gallery', gallery_mode='multi')
    assert len(gallery) % 10 == 0 and len(gallery) > 0


def test_regdb_layout_and_dataset(tmp_path):
    root = _make(tmp_path, 'regdb', num_ids=8, imgs_per_cam=2)
    assert sorted(os.listdir(root)) == [
        'Thermal', 'Visible', 'attributes.json', 'descriptions.json', 'idx',
        'toy_meta.json'
    ]
    assert sorted(os.listdir(osp.join(root, 'Visible')), key=int) == \
        [str(p) for p in range(1, 9)]
    splits = set()
    for trial in range(1, 11):
        train = RegDBDataset(
            root, split='train', trial=trial, descriptions='descriptions.json')
        test = RegDBDataset(root, split='test', trial=trial)
        assert train.num_classes == 4 and len(train) == 4 * 2 * 2
        train_pids = {
            int(osp.basename(osp.dirname(d['img_path'])))
            for d in train.get_data_list()
        }
        test_pids = set(test.get_labels())  # test labels are the pids
        assert train_pids.isdisjoint(test_pids)
        assert train_pids | test_pids == set(range(1, 9))
        splits.add(tuple(sorted(train_pids)))
    assert len(splits) > 1  # ten random splits, not one


def test_llcm_layout_and_dataset(tmp_path):
    root = _make(tmp_path, 'llcm', num_ids=9, imgs_per_cam=2)
    assert not osp.exists(osp.join(root, 'test_nir', 'cam3'))
    assert not osp.exists(osp.join(root, 'train_nir', 'cam3'))
    train = LLCMDataset(root, split='train', descriptions='descriptions.json')
    assert train.num_classes == 6
    assert sorted(set(train.get_labels())) == list(range(6))
    assert (train.get_cam_ids() >= 1).all()
    test = LLCMDataset(root, split='test')
    assert len(set(test.get_labels())) == 3
    query = LLCMDataset(root, split='query')
    gallery = LLCMDataset(root, split='gallery', trial=2)
    assert set(query.get_modalities()) == {'ir'}
    assert set(gallery.get_modalities()) == {'vis'}
    assert len(gallery) == 3 * 3  # 3 test ids x 3 visible cameras each


def test_cli_summary_and_overwrite(tmp_path, capsys):
    out = str(tmp_path / 'cli')
    gen.main([
        '--layout', 'regdb', '--out', out, '--num-ids', '4', '--imgs-per-cam',
        '1', '--seed', '1'
    ])
    text = capsys.readouterr().out
    assert 'Toy regdb dataset written to' in text
    assert '4 ids (train 2, test 2); 4 visible and 4 infrared images' in text
    with pytest.raises(FileExistsError, match='is not empty'):
        gen.main(['--layout', 'regdb', '--out', out])
    gen.main(
        ['--layout', 'regdb', '--out', out, '--num-ids', '6', '--overwrite'])
    assert json.load(open(osp.join(out, 'toy_meta.json')))['num_ids'] == 6
    assert len(os.listdir(osp.join(out, 'Visible'))) == 6
    other = tmp_path / 'precious'
    other.mkdir()
    (other / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not a toy dataset'):
        gen.make_toy_dataset('sysu', str(other), overwrite=True)
    assert (other / 'keep.txt').exists()
    with pytest.raises(ValueError, match='layout must be one of'):
        gen.make_toy_dataset('market', str(tmp_path / 'm'))


def _grad_feature(path):
    img = Image.open(path).convert('L').resize((16, 32), Image.BILINEAR)
    img = np.asarray(img, np.float32)
    gy, gx = np.gradient(img)
    v = np.concatenate([np.abs(gx).ravel(), np.abs(gy).ravel()])
    v -= v.mean()
    return v / np.linalg.norm(v)


def test_identity_is_learnable_across_modalities(tmp_path):
    """A colour-blind hand-made feature (edge maps) already retrieves the
    right visible identity for infrared queries well above chance, so shape
    and pattern carry identity across modalities; a trained model should
    do much better. The seed is fixed, so this is deterministic."""
    root = _make(tmp_path, 'sysu', num_ids=24, imgs_per_cam=3, seed=0)
    q = SYSUMM01Dataset(root, split='query')
    g = SYSUMM01Dataset(root, split='test')
    g_items = [d for d in g.get_data_list() if d['modality'] == 'vis']
    qf = np.stack([_grad_feature(d['img_path']) for d in q.get_data_list()])
    gf = np.stack([_grad_feature(d['img_path']) for d in g_items])
    g_labels = np.array([d['gt_label'] for d in g_items])
    rank1 = (g_labels[(qf @ gf.T).argmax(1)] == q.get_labels()).mean()
    chance = 1 / len(set(q.get_labels()))
    assert rank1 > 1.6 * chance


def test_alt_appearance_and_ir_colour_noise(tmp_path):
    default = _make(tmp_path / 'a', 'sysu', num_ids=8, imgs_per_cam=1)
    alt = gen.make_toy_dataset(
        'sysu',
        str(tmp_path / 'b'),
        num_ids=8,
        imgs_per_cam=1,
        appearance='alt',
        ir_colour_noise=1.0,
        verbose=False)
    root = alt['out_dir']
    meta = json.load(open(osp.join(root, 'toy_meta.json')))
    assert meta['appearance'] == 'alt' and meta['ir_colour_noise'] == 1.0
    # another look
    a = np.asarray(Image.open(osp.join(default, 'cam3/0001/0001.jpg')))
    b = np.asarray(Image.open(osp.join(root, 'cam3/0001/0001.jpg')))
    assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() > 2
    # every infrared description now names a (wrong) colour
    table = json.load(open(osp.join(root, 'descriptions.json')))
    attrs = json.load(open(osp.join(root, 'attributes.json')))
    ir = [(rel, text) for rel, text in table.items()
          if rel.startswith(('cam3', 'cam6'))]
    assert ir
    for rel, text in ir:
        words = set(re.findall(r'[a-z]+', text))
        assert words & COLOUR_WORDS, text
        pid = str(int(rel.split('/')[1]))
        assert attrs[pid]['upper_color'] not in words
    with pytest.raises(ValueError, match='appearance'):
        gen.make_toy_dataset('sysu', str(tmp_path / 'c'), appearance='x')
    with pytest.raises(ValueError, match='ir_colour_noise'):
        gen.make_toy_dataset('sysu', str(tmp_path / 'd'), ir_colour_noise=1.5)


def _digest(root):
    """SHA-256 over every file's relative path and bytes, in path order."""
    h = hashlib.sha256()
    for rel, data in sorted(_files(root).items()):
        h.update(rel.replace(os.sep, '/').encode() + b'\0')
        h.update(data)
    return h.hexdigest()


@pytest.mark.parametrize('layout,kwargs,expected', [
    ('sysu', dict(num_ids=12, imgs_per_cam=2),
     'f5a00a6757bb2f1229c1e95f52ef591e684cd7f85e28f11800e8bcc14c064679'),
    ('regdb', dict(num_ids=8, imgs_per_cam=2),
     'ccdac00e514e15cbe8748602e42d4d32b11e5f7993cfd85fd94d9f23b4440304'),
    ('llcm', dict(num_ids=9, imgs_per_cam=2),
     'e6c19319b8a3bbe213899870ac1e4c858c22b80cc25e532deee5e8e83c07582f'),
    ('sysu',
     dict(
         num_ids=8,
         imgs_per_cam=1,
         appearance='alt',
         ir_colour_noise=0.5,
         seed=1),
     'b2bd0aeb356781c1f63231b18d62fbf409f087091282e3435d497667ff6f747d'),
])
def test_toy_scale_bytes_are_pinned(tmp_path, layout, kwargs, expected):
    """The toy data (the demo's and the toy results') is byte-identical to
    what the generator wrote before the full scale and the parallel
    renderer existed: every file, JPEG bytes included (a Pillow / libjpeg
    upgrade that encodes differently fails here too, and would change the
    demo's numbers). Digests from the generator of commit 1e18ae3."""
    kwargs = dict(kwargs)
    kwargs.setdefault('seed', 0)
    root = _make(tmp_path, layout, **kwargs)
    assert _digest(root) == expected


@pytest.mark.parametrize('layout', ['sysu', 'llcm'])
def test_parallel_rendering_writes_the_same_files(tmp_path, layout):
    one = _make(tmp_path, layout, 'one', workers=1)
    two = _make(tmp_path, layout, 'two', workers=2)
    assert _files(one) == _files(two)


def _plan_full(layout, root):
    """The full-scale layout of ``layout`` with empty image files: the
    planned folders and counts, without the minutes of rendering."""
    writer = gen._Writer(str(root), 0, (64, 32))
    ids = gen.FULL_LAYOUTS[layout](writer)
    for rel_path, *_ in writer.jobs:
        path = root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return ids, writer


def test_full_scale_sysu_has_the_real_counts(tmp_path):
    """SYSU-MM01's official counts, read back by the dataset class: 395
    training ids with 22,258 visible and 11,909 infrared images, 3,803
    infrared queries of 96 ids, and galleries of 301 / 112 images
    (single-shot, all / indoor) and 3,010 / 1,120 (multi-shot)."""
    ids, writer = _plan_full('sysu', tmp_path)
    assert ids == dict(train=296, val=99, test=96)
    root = str(tmp_path)
    train = SYSUMM01Dataset(root, split='train', pipeline=[])
    modalities = train.get_modalities()
    assert train.num_classes == 395
    assert (modalities == 'vis').sum() == 22258
    assert (modalities == 'ir').sum() == 11909
    query = SYSUMM01Dataset(root, split='query', pipeline=[])
    assert len(query) == 3803 and len(set(query.get_labels())) == 96
    sizes = {}
    for mode in ('all', 'indoor'):
        for shots in ('single', 'multi'):
            gallery = SYSUMM01Dataset(
                root,
                split='gallery',
                search_mode=mode,
                gallery_mode=shots,
                trial=3,
                pipeline=[])
            sizes[mode, shots] = len(gallery)
    assert sizes == {
        ('all', 'single'): 301,
        ('all', 'multi'): 3010,
        ('indoor', 'single'): 112,
        ('indoor', 'multi'): 1120
    }
    # every test id can be found in both search modes
    indoor = SYSUMM01Dataset(
        root, split='gallery', search_mode='indoor', pipeline=[])
    assert set(indoor.get_labels()) == set(query.get_labels())
    # about 20 images per (id, camera) folder, as in the release
    folders = {}
    for rel_path, pid, _, cam, _, _ in writer.jobs:
        folders[pid, cam] = folders.get((pid, cam), 0) + 1
    assert set(folders.values()) == {19, 20}


def test_full_scale_llcm_has_the_real_counts(tmp_path):
    """LLCM: 713 training ids with 16,946 visible and 13,975 infrared
    images, 351 test ids with 8,680 visible and 7,166 infrared images
    (46,767 in all); 484 sampled gallery images per trial."""
    ids, writer = _plan_full('llcm', tmp_path)
    assert ids == dict(train=713, test=351)
    assert len(writer.jobs) == 46767
    root = str(tmp_path)
    train = LLCMDataset(root, split='train', pipeline=[])
    modalities = train.get_modalities()
    assert train.num_classes == 713
    assert ((modalities == 'vis').sum(), (modalities == 'ir').sum()) == \
        (16946, 13975)
    test = LLCMDataset(root, split='test', pipeline=[])
    modalities = test.get_modalities()
    assert ((modalities == 'vis').sum(), (modalities == 'ir').sum()) == \
        (8680, 7166)
    for modality in ('ir', 'vis'):
        gallery = LLCMDataset(
            root, split='gallery', modality=modality, trial=1, pipeline=[])
        assert len(gallery) == 484
        assert len(set(gallery.get_labels())) == 351


def test_full_scale_arguments(tmp_path, capsys):
    with pytest.raises(ValueError, match='set by scale="full"'):
        gen.make_toy_dataset(
            'sysu', str(tmp_path / 'a'), num_ids=10, scale='full')
    with pytest.raises(SystemExit):
        gen.parse_args([
            '--layout', 'sysu', '--out', 'x', '--scale', 'full',
            '--imgs-per-cam', '3'
        ])
    assert '--scale full' in capsys.readouterr().err
    with pytest.raises(ValueError, match='scale must be one of'):
        gen.make_toy_dataset('sysu', str(tmp_path / 'b'), scale='huge')
    # RegDB at full scale: the real 412 ids x 10 images per modality
    ids, writer = _plan_full('regdb', tmp_path / 'regdb')
    assert ids == dict(train=206, test=206)
    assert writer.counts == dict(vis=4120, ir=4120)
