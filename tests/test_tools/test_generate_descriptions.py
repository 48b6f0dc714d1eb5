# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/generate_descriptions.py: the sentence template, the attributes
backend on real toy data, and the llava backend with the model faked
(batching, prompts, resume, atomic JSON writing, the rewrite pass)."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmvireid.datasets import SYSUMM01Dataset

ROOT = osp.join(osp.dirname(__file__), '..', '..')
TOY_CONFIG = osp.join(ROOT, 'configs', 'eees_toy.py')


def _load(name, *parts):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gd = _load('generate_descriptions', 'tools', 'generate_descriptions.py')
toy = _load('make_toy_vireid', 'tools', 'dataset_converters',
            'make_toy_vireid.py')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    """A small toy SYSU dataset without its descriptions. What the
    attributes backend must write is kept aside as ``expected.json``: for
    every train image the generator described, the fixed sentence of
    that person's ``Identity.describe`` (an implementation of the template
    independent of the tool's)."""
    root = str(tmp_path_factory.mktemp('gd') / 'toy')
    toy.make_toy_dataset('sysu', root, num_ids=8, imgs_per_cam=1,
                         verbose=False)
    path = osp.join(root, 'descriptions.json')
    with open(path) as f:
        described = json.load(f)
    os.remove(path)
    expected = {}
    for rel in described:
        cam, pid = rel.split('/')[:2]
        modality = 'ir' if cam in ('cam3', 'cam6') else 'vis'
        expected[rel] = toy.make_identity(int(pid), 0).describe(modality)
    with open(osp.join(osp.dirname(root), 'expected.json'), 'w') as f:
        json.dump(expected, f)
    return root


@pytest.fixture
def data(toy_root, tmp_path):
    """A fresh copy of the toy data per test."""
    root = str(tmp_path / 'toy')
    shutil.copytree(toy_root, root)
    with open(osp.join(osp.dirname(toy_root), 'expected.json')) as f:
        expected = json.load(f)
    return root, expected


def run(root, *args):
    return gd.main([TOY_CONFIG, '--data-root', root, '--no-progress', *args])


def read(root, name='descriptions.json'):
    with open(osp.join(root, name)) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------


def test_template_sentence():
    attrs = dict(gender='female', hair='long', upper_color='orange',
                 upper_pattern='striped', lower_color='blue', shoes='white',
                 bag='handbag')
    assert gd.template_sentence(attrs, 'vis') == (
        'A woman with long hair, wearing an orange striped top, blue '
        'trousers and white shoes, carrying a handbag.')
    # infrared: no colour, whatever the record says
    assert gd.template_sentence(attrs, 'ir') == (
        'A woman with long hair, wearing a striped top, trousers and shoes, '
        'carrying a handbag.')
    # unknown values are left out; garments can be named; no bag
    attrs = dict(gender='unknown', hair='Unknown', upper_color='red',
                 upper_pattern='plain', upper_type='jacket',
                 lower_type='skirt', lower_color='', shoes='n/a', bag='none')
    assert gd.template_sentence(attrs, 'vis') == (
        'A person wearing a red jacket, skirt and shoes.')
    with pytest.raises(ValueError, match='modality must be "vis" or "ir"'):
        gd.template_sentence(attrs, 'rgb')


# ---------------------------------------------------------------------------
# attributes backend, for real
# ---------------------------------------------------------------------------


def test_attributes_backend_rebuilds_the_toy_descriptions(data):
    root, expected = data
    summary = run(root, '--backend', 'attributes')
    table = read(root)
    # the same sentences as the generator wrote, for every train image
    assert table == expected
    assert summary == dict(
        described=len(expected), skipped=0, remaining=0,
        total=len(expected))
    # and the dataset now loads with them
    ds = SYSUMM01Dataset(root, descriptions='descriptions.json')
    assert all(ds.get_data_info(i)['text'] == expected[osp.relpath(
        ds.get_data_info(i)['img_path'], root)] for i in range(len(ds)))


def test_limit_then_resume(data):
    root, expected = data
    total = len(expected)
    first = run(root, '--limit', '5')
    assert first == dict(described=5, skipped=0, remaining=total - 5,
                         total=total)
    assert len(read(root)) == 5
    second = run(root)
    assert second == dict(described=total - 5, skipped=5, remaining=0,
                          total=total)
    assert read(root) == expected
    # nothing left: nothing described, the file unchanged
    assert run(root)['described'] == 0
    assert read(root) == expected


def test_attributes_errors(data, capsys):
    root, _ = data
    os.remove(osp.join(root, 'attributes.json'))
    with pytest.raises(SystemExit) as exc:
        run(root)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert f'attribute table "{osp.join(root, "attributes.json")}" does ' \
        'not exist' in err
    # a person missing from the table
    path = osp.join(root, 'table.json')
    with open(path, 'w') as f:
        json.dump({'9999': {}}, f)
    backend = gd.AttributesBackend(path)
    item = gd.ImageItem('cam1/0003/0001.jpg', '', 'vis')
    with pytest.raises(ValueError, match=r'Person 3 \(image '
                       r'"cam1/0003/0001.jpg"\) is not in the attribute'):
        backend.describe([item])
    # ids from a regular expression (RegDB-style file names), or an error
    backend = gd.AttributesBackend(path, pid_regex=r'_(\d{5})_')
    assert backend.person_id('Thermal/9999/male_t_09999_1.jpg') == 9999
    with pytest.raises(ValueError, match='captures no person id'):
        backend.person_id('a/b.jpg')
    with pytest.raises(ValueError, match='is not a number'):
        gd.AttributesBackend(path).person_id('train/x.jpg')


# ---------------------------------------------------------------------------
# llava backend, the model faked
# ---------------------------------------------------------------------------


class FakeLlava:
    """Records the calls; captions number the images it has seen."""

    def __init__(self, fail_on_call=None):
        self.calls = []
        self.fail_on_call = fail_on_call

    def __call__(self, images, prompts):
        self.calls.append((images, prompts))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError('GPU fell off the bus')
        start = sum(len(c[0]) for c in self.calls[:-1])
        return [
            f'ASSISTANT:  caption\n{start + i}. ' for i in range(len(images))
        ]


@pytest.fixture
def fake_llava(monkeypatch):
    fake = FakeLlava()
    loads = []

    def load_llava(model_name, device='auto', max_new_tokens=96):
        loads.append((model_name, device, max_new_tokens))
        return fake

    monkeypatch.setattr(gd, 'load_llava', load_llava)
    fake.loads = loads
    return fake


def test_llava_batches_prompts_and_output(data, fake_llava):
    root, expected = data
    total = len(expected)
    summary = run(root, '--backend', 'llava', '--batch-size', '4',
                  '--model', 'my/llava', '--max-new-tokens', '40')
    assert fake_llava.loads == [('my/llava', 'auto', 40)]
    sizes = [len(images) for images, _ in fake_llava.calls]
    assert sizes == [4] * (total // 4) + ([total % 4] if total % 4 else [])
    ds = SYSUMM01Dataset(root)  # dataset order: visible, then infrared
    order = [
        osp.relpath(ds.get_data_info(i)['img_path'], root)
        for i in range(len(ds))
    ]
    mods = [ds.get_data_info(i)['modality'] for i in range(len(ds))]
    prompts = [p for _, ps in fake_llava.calls for p in ps]
    for prompt, mod in zip(prompts, mods):
        assert prompt == gd.LLAVA_FORMAT.format(
            prompt=gd.VIS_PROMPT if mod == 'vis' else gd.IR_PROMPT)
    assert 'Do not mention any colour' in gd.IR_PROMPT
    assert 'colour' in gd.VIS_PROMPT
    images = [img for imgs, _ in fake_llava.calls for img in imgs]
    assert all(img.mode == 'RGB' and img.size == (64, 128) for img in images)
    # cleaned captions (no echo, one line), keyed by relative path
    assert read(root) == {key: f'caption {i}.' for i, key in enumerate(order)}
    assert summary['described'] == total


def test_llava_resume_skips_described_images(data, fake_llava):
    root, expected = data
    keys = sorted(expected)
    done = {keys[0]: 'kept one', keys[5]: 'kept two', keys[7]: '  '}
    with open(osp.join(root, 'descriptions.json'), 'w') as f:
        json.dump(done, f)
    summary = run(root, '--backend', 'llava', '--batch-size', '3')
    seen = sum(len(images) for images, _ in fake_llava.calls)
    # the empty text counts as missing
    assert seen == len(expected) - 2
    assert summary == dict(described=len(expected) - 2, skipped=2,
                           remaining=0, total=len(expected))
    table = read(root)
    assert table[keys[0]] == 'kept one' and table[keys[5]] == 'kept two'
    assert table[keys[7]].startswith('caption ')
    assert set(table) == set(expected)


def test_llava_crash_keeps_finished_batches(data, monkeypatch):
    root, expected = data
    fake = FakeLlava(fail_on_call=3)
    monkeypatch.setattr(gd, 'load_llava', lambda *a, **k: fake)
    with pytest.raises(RuntimeError, match='GPU fell off the bus'):
        run(root, '--backend', 'llava', '--batch-size', '4',
            '--save-every', '5')
    # the two finished batches were written (on the way out), atomically
    assert len(read(root)) == 8
    assert not [n for n in os.listdir(root) if n.endswith('.tmp')]
    # a resumed run describes the rest only
    fake2 = FakeLlava()
    monkeypatch.setattr(gd, 'load_llava', lambda *a, **k: fake2)
    assert run(root, '--backend', 'llava', '--batch-size', '4')[
        'skipped'] == 8
    assert sum(len(i) for i, _ in fake2.calls) == len(expected) - 8


def test_write_json_atomic_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'd.json')
    gd.write_json_atomic(path, {'a.jpg': 'old'})

    def broken_fsync(fd):
        # the new text is in the temporary file, then the disk is full
        raise OSError('No space left on device')

    # write_json_atomic writes through mmvireid's atomic_write, which
    # flushes the temporary file with os.fsync before the rename
    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='No space left'):
        gd.write_json_atomic(path, {'a.jpg': 'new'})
    monkeypatch.undo()
    with open(path) as f:
        assert json.load(f) == {'a.jpg': 'old'}
    assert os.listdir(tmp_path) == ['d.json']


def test_llava_rewrite_pass(data, tmp_path):
    root, _ = data
    fake = FakeLlava()
    answers = iter([
        'Sure! {"gender": "male", "hair": "short", "upper_color": "red", '
        '"upper_pattern": "plain", "lower_color": "black", "shoes": "white",'
        ' "bag": "none"}', 'I cannot tell.'
    ])
    rewrites = []

    def rewrite(prompts):
        rewrites.extend(prompts)
        return [next(answers) for _ in prompts]

    backend = gd.LlavaBackend(fake, rewrite)
    img = osp.join(root, 'cam1', sorted(os.listdir(osp.join(root,
                                                            'cam1')))[0])
    img = osp.join(img, os.listdir(img)[0])
    items = [gd.ImageItem('a.jpg', img, 'ir'), gd.ImageItem('b.jpg', img,
                                                            'vis')]
    texts = backend.describe(items)
    # IR: rendered by the template, colours dropped; failed parse: caption
    assert texts == ['A man with short hair, wearing a top, trousers and '
                     'shoes.', 'caption 1.']
    assert backend.num_rewrite_failures == 1
    assert rewrites[0] == gd.REWRITE_PROMPT.format(caption='caption 0.')


def test_llava_without_transformers(data, monkeypatch, capsys):
    root, _ = data
    monkeypatch.setitem(sys.modules, 'transformers', None)  # not installed
    with pytest.raises(SystemExit) as exc:
        run(root, '--backend', 'llava')
    assert exc.value.code == 1
    assert 'The llava backend needs Hugging Face transformers, an optional ' \
        'dependency' in capsys.readouterr().err
    assert not osp.exists(osp.join(root, 'descriptions.json'))


def test_package_imports_without_transformers():
    # transformers is optional: the package (and EEES) import without it
    code = ('import sys; sys.modules["transformers"] = None; '
            'import mmvireid.models, mmvireid.datasets, mmvireid.engine; '
            'from mmvireid.models.reid import EEES; print("ok")')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
