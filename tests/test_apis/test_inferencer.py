# Copyright (c) mmvireid contributors. All rights reserved.
"""VIReIDInferencer on the toy model: features, ranking, saved results."""
import json
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mmvireid.apis import (ReIDFeatures, VIReIDInferencer, parse_reid_path,
                           protocol_keep_mask, rank_gallery)
from mmvireid.utils.checkpoint import CheckpointMismatchError
from mmvireid.visualization import VIReIDVisualizer

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py')


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory):
    """A checkpoint of the toy model (random init, seed 0), saved the way
    the Runner saves one (``state_dict`` + ``meta``)."""
    from mmvireid.registry import MODELS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmvireid'):
        model = MODELS.build(Config.fromfile(TOY_CONFIG).model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'toy.pth')
    torch.save(dict(meta=dict(epoch=0), state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def inferencer(toy_checkpoint):
    return VIReIDInferencer(
        TOY_CONFIG,
        weights=toy_checkpoint,
        device='cpu',
        batch_size=8,
        show_progress=False)


def _files(root, cam, pid):
    folder = osp.join(root, f'cam{cam}', f'{pid:04d}')
    return [osp.join(folder, f) for f in sorted(os.listdir(folder))]


def _first_files(root, cams, pid):
    """Files of the first camera in ``cams`` holding identity ``pid``."""
    for cam in cams:
        if osp.isdir(osp.join(root, f'cam{cam}', f'{pid:04d}')):
            return _files(root, cam, pid)
    raise AssertionError(f'no folder of id {pid} in cameras {cams}')


@pytest.fixture(scope='module')
def easy_case(toy_sysu_root, tmp_path_factory):
    """An IR query and a visible gallery of 6 other identities plus a near
    copy of the query (noise of +-3 grey levels), filed as camera 1 of the
    query's identity."""
    root = toy_sysu_root
    with open(osp.join(root, 'exp', 'test_id.txt')) as f:
        test_ids = [int(t) for t in f.readline().split(',')]
    qpid = test_ids[0]
    query = _first_files(root, (3, 6), qpid)[0]
    gallery_root = tmp_path_factory.mktemp('easy_gallery')
    gallery = []
    for pid in test_ids[1:7]:
        gallery += _first_files(root, (1, 2, 4, 5), pid)[:2]
    rng = np.random.default_rng(0)
    img = np.asarray(Image.open(query).convert('RGB')).astype(np.int16)
    noisy = np.clip(img + rng.integers(-3, 4, img.shape), 0, 255)
    copy_dir = gallery_root / 'cam1' / f'{qpid:04d}'
    copy_dir.mkdir(parents=True)
    copy_path = str(copy_dir / 'near_copy.png')
    Image.fromarray(noisy.astype(np.uint8)).save(copy_path)
    gallery.insert(5, copy_path)  # not first: the ranking must move it
    return dict(query=query, qpid=qpid, gallery=gallery, copy=copy_path)


def test_easy_query_ranks_the_right_identity_first(inferencer, easy_case,
                                                   tmp_path):
    results = inferencer(
        query=easy_case['query'],
        gallery=easy_case['gallery'],
        query_modality='ir',
        gallery_modality='vis',
        topk=5,
        protocol='sysu',
        out_dir=str(tmp_path / 'out'))
    assert len(results) == 1
    res = results[0]
    assert res['query']['pid'] == easy_case['qpid']
    assert res['query']['cam_id'] == parse_reid_path(
        easy_case['query'])['cam_id']
    assert res['query']['modality'] == 'ir'
    top = res['matches'][0]
    assert top['img_path'] == easy_case['copy']
    assert top['pid'] == easy_case['qpid'] and top['correct'] is True
    assert res['first_correct_rank'] == 1
    assert [m['rank'] for m in res['matches']] == [1, 2, 3, 4, 5]
    scores = [m['score'] for m in res['matches']]
    assert scores == sorted(scores, reverse=True)
    # every other gallery image is another identity
    assert all(m['correct'] is False for m in res['matches'][1:])

    # saved: the JSON mirrors the results, one PNG of 1 + 5 tiles
    saved = json.load(open(tmp_path / 'out' / 'rankings.json'))
    pngs = sorted(
        f for f in os.listdir(tmp_path / 'out') if f.endswith('.png'))
    assert pngs == ['rank_00000_0001.png']
    png = str(tmp_path / 'out' / pngs[0])
    assert saved['rankings'] == json.loads(
        json.dumps([dict(r, image=png) for r in results]))
    assert saved['weights'] == inferencer.weights
    assert (saved['source'], saved['protocol'], saved['topk']) == (
        'VIReIDInferencer', 'sysu', 5)
    img = mmcv.imread(str(tmp_path / 'out' / pngs[0]), channel_order='rgb')
    layout = VIReIDVisualizer(name='test_inferencer_layout').layout(5)
    assert img.shape == (layout.height, layout.width, 3)
    # frame colours: blue query, green first match, red others
    y = layout.gap + 1
    assert tuple(img[y, layout.frames[0][0] + 1]) == (30, 110, 220)
    assert tuple(img[y, layout.frames[1][0] + 1]) == (0, 170, 0)
    for x0, _, _, _ in layout.frames[2:]:
        assert tuple(img[y, x0 + 1]) == (220, 20, 20)


def test_features_match_a_manual_forward(inferencer, easy_case):
    """The test pipeline + preprocessor + predict, written out by hand."""
    paths = easy_case['gallery'][:3]
    feats = inferencer.extract(paths, modality='vis')
    assert isinstance(feats, ReIDFeatures) and len(feats) == 3
    model = inferencer.model
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    batch = []
    for p in paths:
        img = Image.open(p).convert('RGB').resize((32, 64), Image.LANCZOS)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        batch.append((x.float() - mean) / std)
    with torch.no_grad():
        visible = dict(modality=torch.zeros(3, dtype=torch.long))
        ref = F.normalize(
            model.extract_feat(torch.stack(batch), visible), dim=1)
    assert feats.feats.shape == ref.shape == (3, 320)
    torch.testing.assert_close(feats.feats, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        feats.feats.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)


def test_batching_folders_and_arrays(inferencer, toy_sysu_root, tmp_path):
    folder = osp.join(toy_sysu_root, 'cam3')
    files = sorted(osp.join(r, f) for r, _, fs in os.walk(folder)
                   for f in fs)[:10]
    sub = tmp_path / 'imgs'
    for i, f in enumerate(files):
        dst = sub / f'cam3/{i:04d}' if i % 2 else sub / 'cam3/0000'
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst / osp.basename(f))
    listed = sorted(osp.join(r, f) for r, _, fs in os.walk(sub) for f in fs)
    by_folder = inferencer.extract(str(sub), modality='ir', batch_size=3)
    assert by_folder.img_paths == listed  # recursive, sorted by path
    one_by_one = inferencer.extract(listed, modality='ir', batch_size=1)
    torch.testing.assert_close(
        by_folder.feats, one_by_one.feats, atol=1e-5, rtol=1e-5)
    # a BGR array gives the same feature as its file
    arrays = [mmcv.imread(p, backend='pillow') for p in listed[:2]]
    from_arrays = inferencer.extract(arrays, modality='ir', pid=[7, 8])
    torch.testing.assert_close(
        from_arrays.feats, one_by_one.feats[:2], atol=1e-5, rtol=1e-5)
    assert from_arrays.img_paths == [None, None]
    assert from_arrays.pids == [7, 8]
    assert from_arrays.cam_ids == [None, None]
    assert by_folder.cam_ids == [3] * len(listed)


def test_rank_equals_per_query_loops(inferencer, toy_sysu_root):
    """Ranking and the SYSU filter, against loops written like the
    reference evaluation (per query: mask, sort by distance)."""
    q = inferencer.extract([
        _files(toy_sysu_root, 3, 4)[0],
        _files(toy_sysu_root, 6, 4)[0],
        _files(toy_sysu_root, 3, 6)[1]
    ],
                           modality='ir')
    gal = []
    for pid in (4, 6, 9):
        for cam in (1, 2, 4):
            if osp.isdir(osp.join(toy_sysu_root, f'cam{cam}', f'{pid:04d}')):
                gal += _files(toy_sysu_root, cam, pid)[:2]
    g = inferencer.extract(gal, modality='vis')
    for protocol in (None, 'sysu'):
        results = inferencer.rank(q, g, topk=6, protocol=protocol)
        for qi, res in enumerate(results):
            dist = []
            for gi in range(len(g)):
                if protocol == 'sysu' and q.cam_ids[qi] == 3 and \
                        g.cam_ids[gi] == 2:
                    continue
                dist.append((-float(q.feats[qi] @ g.feats[gi]), gi))
            dist.sort()
            # the k-th match has the loop's k-th best score (indices of
            # near-tied scores of the untrained model may swap: compare
            # scores, which is what the ranking is defined by)
            scores = [m['score'] for m in res['matches']]
            assert scores == pytest.approx([-d for d, _ in dist[:6]],
                                           abs=1e-6)
            assert {m['index'] for m in res['matches']} <= {
                gi for d, gi in dist if -d >= scores[-1] - 1e-6}
            for m in res['matches']:
                assert m['score'] == pytest.approx(
                    float(q.feats[qi] @ g.feats[m['index']]), abs=1e-6)
                assert m['correct'] == (m['pid'] == q.pids[qi])
    filtered = inferencer.rank(q, g, topk=None, protocol='sysu')
    assert all(m['cam_id'] != 2 for m in filtered[0]['matches'])
    assert len(filtered[1]['matches']) == len(g)  # camera 6: nothing dropped


def test_keep_mask_rules():
    # SYSU: camera-3 queries drop camera 2 whatever the identity
    keep = protocol_keep_mask('sysu', [1, 1], [3, 6], [1, 2, 1], [2, 2, 1])
    assert keep.tolist() == [[False, False, True], [True, True, True]]
    # LLCM: same identity AND same camera number
    keep = protocol_keep_mask('llcm', [1, 2], [4, 4], [1, 1, 2], [4, 5, 5])
    assert keep.tolist() == [[False, True, True], [True, True, True]]
    assert protocol_keep_mask('regdb', [1], [None], [2], [None]).all()
    with pytest.raises(ValueError, match='needs camera ids for every image'):
        protocol_keep_mask('sysu', [1], [None], [1], [2])
    with pytest.raises(ValueError, match='protocol must be one of'):
        protocol_keep_mask('market', [1], [1], [1], [1])
    # ties keep gallery order
    q = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert rank_gallery(q, g, topk=None) == [[(1, 1.0), (2, 1.0), (0, 0.0)]]


def test_parse_reid_path():
    assert parse_reid_path('data/sysu/cam3/0012/0001.jpg') == dict(
        pid=12, cam_id=3)
    assert parse_reid_path('llcm/test_nir/cam7/0100/x_c07.jpg') == dict(
        pid=100, cam_id=7)
    assert parse_reid_path('RegDB/Thermal/42/male_t_1.bmp') == dict(
        pid=42, cam_id=2)
    assert parse_reid_path('RegDB/Visible/42/male_v_1.bmp') == dict(
        pid=42, cam_id=1)
    assert parse_reid_path('photos/me.jpg') == dict(pid=None, cam_id=None)


def test_model_names_and_errors(inferencer, toy_checkpoint, tmp_path):
    names = VIReIDInferencer.list_models()
    assert 'clip_vireid_toy' in names
    assert VIReIDInferencer.list_models('^csdn') == sorted(
        n for n in names if n.startswith('csdn'))
    with pytest.raises(ValueError, match='neither a config file nor a model'):
        VIReIDInferencer('no-such-model', weights=toy_checkpoint)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        VIReIDInferencer(TOY_CONFIG, weights=str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='image "nope.jpg" does not'):
        inferencer.extract('nope.jpg')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no image'):
        inferencer.extract(str(tmp_path / 'empty'))
    with pytest.raises(
            ValueError, match=r"modality must be one of \('vis', 'ir'\)"):
        inferencer.extract(np.zeros((8, 8, 3), np.uint8), modality='rgb')
    with pytest.raises(ValueError, match='has 2 entries for 1 images'):
        inferencer.extract(np.zeros((8, 8, 3), np.uint8), pid=[1, 2])


def test_modality_and_camera_requirements(inferencer, monkeypatch):
    img = np.zeros((128, 64, 3), np.uint8)
    encoder = inferencer.model.image_encoder
    monkeypatch.setattr(encoder, 'modality_specific_stem', True)
    with pytest.raises(ValueError, match='modality-specific stem'):
        inferencer.extract(img)
    monkeypatch.setattr(encoder, 'modality_specific_stem', False)
    monkeypatch.setattr(encoder, 'cam_embed', torch.zeros(7, 64))
    with pytest.raises(ValueError, match='camera embedding .* needs cam_id'):
        inferencer.extract(img)


def test_checkpoint_must_fit_the_config(toy_checkpoint, tmp_path):
    state = torch.load(toy_checkpoint, weights_only=True)
    state['state_dict'].pop('head.classifiers.0.weight')
    bad = str(tmp_path / 'bad.pth')
    torch.save(state, bad)
    with pytest.raises(CheckpointMismatchError,
                       match='1 tensor.s. of the model are missing from it: '
                       'head.classifiers.0.weight'):
        VIReIDInferencer(TOY_CONFIG, weights=bad, device='cpu')
    # strict=False: loads what fits, names the rest in a warning
    inferencer = VIReIDInferencer(TOY_CONFIG, weights=bad, device='cpu',
                                  strict=False)
    good = torch.load(toy_checkpoint, weights_only=True)['state_dict']
    torch.testing.assert_close(
        inferencer.model.state_dict()['head.classifiers.1.weight'],
        good['head.classifiers.1.weight'])


def test_rerank_orders_by_reranked_distances(inferencer, easy_case):
    from mmvireid.evaluation import re_ranking
    query = inferencer.extract(easy_case['query'], modality='ir')
    gallery = inferencer.extract(easy_case['gallery'], modality='vis')
    plain = inferencer.rank(query, gallery, topk=None)
    reranked = inferencer.rank(
        query, gallery, topk=None, rerank=dict(k1=4, k2=2))
    dist = re_ranking(query.feats, gallery.feats, k1=4, k2=2)[0]
    order = [m['index'] for m in reranked[0]['matches']]
    assert order == np.argsort(dist, kind='stable').tolist()
    # the scores stay the cosine similarities of the same pairs
    cosine = {m['index']: m['score'] for m in plain[0]['matches']}
    assert all(m['score'] == pytest.approx(cosine[m['index']])
               for m in reranked[0]['matches'])
    assert reranked[0]['first_correct_rank'] == next(
        m['rank'] for m in reranked[0]['matches'] if m['correct'])
