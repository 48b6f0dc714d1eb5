# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/generate_descriptions.py: the sentence template, the attributes
backend on real toy data, the vlm backend with the model faked (batching,
prompts, resume, atomic JSON writing, the rewrite pass, the infrared colour
filter), shards and merge, signals, --limit, --check, and the real vlm
backend on a tiny random-init VLM built here (whole image, end to end into
tools/train.py)."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import signal
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


def core(summary):
    """The counts of a run's summary (not its timing or filter counts)."""
    return {
        k: summary[k]
        for k in ('described', 'skipped', 'remaining', 'total')
    }


def modality_of(key):
    return 'ir' if key.split('/')[0] in ('cam3', 'cam6') else 'vis'


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
    # a colour inside another field (what a rewrite LLM writes) never
    # reaches an infrared sentence
    attrs = dict(gender='male', hair='short black', upper_type='white '
                 't-shirt', lower_type='blue jeans', bag='red backpack')
    assert gd.template_sentence(attrs, 'ir') == (
        'A man with short hair, wearing a t-shirt, jeans and shoes, '
        'carrying a backpack.')
    assert 'black' in gd.template_sentence(attrs, 'ir', purify=False)


# ---------------------------------------------------------------------------
# attributes backend, for real
# ---------------------------------------------------------------------------


def test_attributes_backend_rebuilds_the_toy_descriptions(data):
    root, expected = data
    summary = run(root, '--backend', 'attributes')
    table = read(root)
    # the same sentences as the generator wrote, for every train image
    assert table == expected
    assert core(summary) == dict(
        described=len(expected), skipped=0, remaining=0,
        total=len(expected))
    assert summary['ir_filtered'] == 0 and summary['empty'] == 0
    # and the dataset now loads with them
    ds = SYSUMM01Dataset(root, descriptions='descriptions.json')
    assert all(ds.get_data_info(i)['text'] == expected[osp.relpath(
        ds.get_data_info(i)['img_path'], root)] for i in range(len(ds)))


def test_limit_then_resume(data):
    root, expected = data
    total = len(expected)
    first = run(root, '--backend', 'attributes', '--limit', '5')
    assert core(first) == dict(described=5, skipped=0, remaining=total - 5,
                               total=total)
    # a dry run shows both modalities (visible images come first in the
    # dataset, infrared ones last)
    done = read(root)
    assert len(done) == 5
    assert {modality_of(k) for k in done} == {'vis', 'ir'}
    second = run(root, '--backend', 'attributes')
    assert core(second) == dict(described=total - 5, skipped=5, remaining=0,
                                total=total)
    assert read(root) == expected
    # nothing left: nothing described, the file unchanged
    assert run(root, '--backend', 'attributes')['described'] == 0
    assert read(root) == expected


def test_attributes_errors(data, capsys):
    root, _ = data
    os.remove(osp.join(root, 'attributes.json'))
    with pytest.raises(SystemExit) as exc:
        run(root, '--backend', 'attributes')
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


def test_no_default_backend(data, capsys):
    """Without --backend the tool names the exact commands, for this data
    (a toy root with attributes.json gets the attributes command too)."""
    root, _ = data
    with pytest.raises(SystemExit) as exc:
        run(root)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'Name the backend with --backend (there is no default)' in err
    assert (f'python tools/generate_descriptions.py {TOY_CONFIG} --backend '
            'vlm --model llava-hf/llava-1.5-7b-hf') in err
    assert f'{TOY_CONFIG} --backend attributes' in err
    assert not osp.exists(osp.join(root, 'descriptions.json'))


# ---------------------------------------------------------------------------
# vlm backend, the model faked
# ---------------------------------------------------------------------------

#: What a captioner that ignores "do not mention any colour" writes
COLOURFUL = 'A man with short black hair in a light blue shirt and red shoes.'


class FakeVLM:
    """Records the calls; captions number the images it has seen. Infrared
    captions name colours (as real captioners do now and then)."""

    def __init__(self, fail_on_call=None, on_call=None):
        self.calls = []
        self.fail_on_call = fail_on_call
        self.on_call = on_call or {}

    def __call__(self, images, prompts):
        self.calls.append((images, prompts))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError('GPU fell off the bus')
        if len(self.calls) in self.on_call:
            self.on_call[len(self.calls)]()
        start = sum(len(c[0]) for c in self.calls[:-1])
        return [
            f'ASSISTANT:  caption\n{start + i}. ' +
            (COLOURFUL if p == gd.IR_PROMPT else '')
            for i, p in enumerate(prompts)
        ]


@pytest.fixture
def fake_vlm(monkeypatch):
    fake = FakeVLM()
    loads = []

    def load_vlm(model_name, device='auto', dtype='auto', max_new_tokens=96,
                 image_fit='pad', prompt_format=None,
                 trust_remote_code=False):
        loads.append((model_name, device, dtype, max_new_tokens, image_fit))
        return fake

    monkeypatch.setattr(gd, 'load_vlm', load_vlm)
    fake.loads = loads
    return fake


def test_vlm_batches_prompts_output_and_ir_filter(data, fake_vlm, capsys):
    root, expected = data
    total = len(expected)
    summary = run(root, '--backend', 'vlm', '--batch-size', '4', '--model',
                  'my/vlm', '--max-new-tokens', '40', '--dtype', 'float32')
    assert fake_vlm.loads == [('my/vlm', 'auto', 'float32', 40, 'pad')]
    sizes = [len(images) for images, _ in fake_vlm.calls]
    assert sizes == [4] * (total // 4) + ([total % 4] if total % 4 else [])
    ds = SYSUMM01Dataset(root)  # dataset order: visible, then infrared
    order = [
        osp.relpath(ds.get_data_info(i)['img_path'], root)
        for i in range(len(ds))
    ]
    mods = [ds.get_data_info(i)['modality'] for i in range(len(ds))]
    prompts = [p for _, ps in fake_vlm.calls for p in ps]
    assert prompts == [
        gd.VIS_PROMPT if mod == 'vis' else gd.IR_PROMPT for mod in mods
    ]
    assert 'Do not mention any colour' in gd.IR_PROMPT
    assert 'colour' in gd.VIS_PROMPT
    images = [img for imgs, _ in fake_vlm.calls for img in imgs]
    assert all(img.mode == 'RGB' and img.size == (64, 128) for img in images)
    # cleaned captions (no echo, one line), keyed by relative path; the
    # infrared ones lost their colours, the visible ones kept them
    table = read(root)
    num_ir = mods.count('ir')
    assert table == {
        key: f'caption {i}.' +
        (' A man with short hair in a shirt and shoes.' if mod == 'ir' else
         '')
        for i, (key, mod) in enumerate(zip(order, mods))
    }
    assert summary['described'] == total
    assert summary['ir_filtered'] == num_ir
    out = capsys.readouterr().out
    assert f'{num_ir} infrared texts changed by the colour filter' in out


def test_llava_is_an_alias_of_vlm(data, fake_vlm):
    root, expected = data
    assert run(root, '--backend', 'llava')['described'] == len(expected)


def test_vlm_resume_skips_described_images(data, fake_vlm):
    root, expected = data
    keys = sorted(expected)
    ir_key = [k for k in keys if modality_of(k) == 'ir'][-1]
    assert ir_key not in (keys[0], keys[5], keys[7])
    done = {keys[0]: 'kept one', keys[5]: 'kept two', keys[7]: '  ',
            ir_key: 'An older IR text with a red bag.'}
    with open(osp.join(root, 'descriptions.json'), 'w') as f:
        json.dump(done, f)
    summary = run(root, '--backend', 'vlm', '--batch-size', '3')
    seen = sum(len(images) for images, _ in fake_vlm.calls)
    # the empty text counts as missing
    assert seen == len(expected) - 3
    assert core(summary) == dict(described=len(expected) - 3, skipped=3,
                                 remaining=0, total=len(expected))
    table = read(root)
    assert table[keys[0]] == 'kept one' and table[keys[5]] == 'kept two'
    assert table[keys[7]].startswith('caption ')
    assert set(table) == set(expected)
    # infrared texts of an older run are filtered too
    assert table[ir_key] == 'An older IR text with a bag.'


def test_vlm_crash_keeps_finished_batches(data, monkeypatch):
    root, expected = data
    fake = FakeVLM(fail_on_call=3)
    monkeypatch.setattr(gd, 'load_vlm', lambda *a, **k: fake)
    with pytest.raises(RuntimeError, match='GPU fell off the bus'):
        run(root, '--backend', 'vlm', '--batch-size', '4', '--save-every',
            '5')
    # the two finished batches were written (on the way out), atomically
    assert len(read(root)) == 8
    assert not [n for n in os.listdir(root) if 'tmp' in n]
    # a resumed run describes the rest only
    fake2 = FakeVLM()
    monkeypatch.setattr(gd, 'load_vlm', lambda *a, **k: fake2)
    assert run(root, '--backend', 'vlm', '--batch-size', '4')['skipped'] == 8
    assert sum(len(i) for i, _ in fake2.calls) == len(expected) - 8


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_before_exit(data, monkeypatch, capsys, sig):
    """A SIGTERM (a batch job's time limit) or Ctrl-C during the third
    batch: the two finished batches are saved, the exit code says which
    signal, and the same command resumes."""
    root, expected = data
    fake = FakeVLM(on_call={3: lambda: os.kill(os.getpid(), sig)})
    monkeypatch.setattr(gd, 'load_vlm', lambda *a, **k: fake)
    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as exc:
        run(root, '--backend', 'vlm', '--batch-size', '4', '--save-every',
            '100')
    assert exc.value.code == 128 + sig
    assert signal.getsignal(sig) is before  # handlers restored
    assert len(read(root)) == 8
    err = capsys.readouterr().err
    assert f'interrupted by {signal.Signals(sig).name}' in err
    assert 'run the same command again to resume' in err
    fake2 = FakeVLM()
    monkeypatch.setattr(gd, 'load_vlm', lambda *a, **k: fake2)
    assert run(root, '--backend', 'vlm', '--batch-size', '4')['skipped'] == 8
    assert len(read(root)) == len(expected)


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


def test_vlm_rewrite_pass_and_fallback_are_colour_free(data):
    root, _ = data
    fake = FakeVLM()
    answers = iter([
        # colours inside the hair, garment and bag fields
        'Sure! {"gender": "male", "hair": "short black", "upper_type": '
        '"white t-shirt", "upper_color": "red", "upper_pattern": "plain", '
        '"lower_type": "blue jeans", "lower_color": "black", "shoes": '
        '"white", "bag": "red backpack"}', 'I cannot tell.',
        'I cannot tell either.'
    ])
    rewrites = []

    def rewrite(prompts):
        rewrites.extend(prompts)
        return [next(answers) for _ in prompts]

    backend = gd.VLMBackend(fake, rewrite)
    img = osp.join(root, 'cam1', sorted(os.listdir(osp.join(root,
                                                            'cam1')))[0])
    img = osp.join(img, os.listdir(img)[0])
    items = [
        gd.ImageItem('a.jpg', img, 'ir'),
        gd.ImageItem('b.jpg', img, 'vis'),
        gd.ImageItem('c.jpg', img, 'ir')
    ]
    out = str(osp.join(root, 'out.json'))
    summary = gd.generate_descriptions(items, backend, out, progress=False)
    texts = read(root, 'out.json')
    # IR record: rendered without colour fields, colours in other fields
    # filtered; failed parse: the caption kept, its colours filtered (IR)
    # or kept (visible)
    assert texts == {
        'a.jpg': 'A man with short hair, wearing a t-shirt, jeans and '
        'shoes, carrying a backpack.',
        'b.jpg': 'caption 1.',
        'c.jpg': 'caption 2. A man with short hair in a shirt and shoes.'
    }
    assert backend.num_rewrite_failures == 2
    assert summary['ir_filtered'] == 2
    assert rewrites[1] == gd.REWRITE_PROMPT.format(caption='caption 1.')


def test_empty_texts_are_not_stored(data):
    root, _ = data
    img = osp.join(root, 'cam1', sorted(os.listdir(osp.join(root,
                                                            'cam1')))[0])
    img = osp.join(img, os.listdir(img)[0])

    class Backend:

        def describe(self, items):
            return ['  ', 'Black.', 'A person.']

    items = [gd.ImageItem(k, img, m)
             for k, m in (('a.jpg', 'vis'), ('b.jpg', 'ir'), ('c.jpg', 'ir'))]
    out = osp.join(root, 'out.json')
    summary = gd.generate_descriptions(items, Backend(), out, progress=False)
    # an empty caption, and an IR caption that was only a colour
    assert read(root, 'out.json') == {'c.jpg': 'A person.'}
    assert summary['empty'] == 2 and summary['remaining'] == 2


def test_limit_samples_both_modalities_evenly():
    items = [gd.ImageItem(f'v{i}', '', 'vis') for i in range(10)] + \
        [gd.ImageItem(f'i{i}', '', 'ir') for i in range(4)]
    picks = gd.sample_both_modalities(items, 6)
    assert [p.key for p in picks] == ['v0', 'i0', 'v3', 'i1', 'v6', 'i2']
    # one modality short: the other takes its share
    picks = gd.sample_both_modalities(items, 12)
    assert sum(p.modality == 'ir' for p in picks) == 4
    assert len(picks) == 12
    assert gd.sample_both_modalities(items, 99) == items


def test_progress_line_and_plain_progress(data, capsys):
    assert gd.progress_line(640, 34167, 52.0) == (
        'described 640/34167 (1.9 %), 12.31 img/s, ETA 0:45:24')
    assert gd.progress_line(0, 10, 0.0).endswith('ETA ?')
    root, expected = data
    # stderr is not a terminal here: one plain line per save
    gd.main([
        TOY_CONFIG, '--data-root', root, '--backend', 'attributes',
        '--batch-size', '8', '--save-every', '2'
    ])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith('described ')]
    assert len(lines) == -(-len(expected) // 8) // 2  # batches / 2
    assert 'img/s, ETA ' in lines[0]


# ---------------------------------------------------------------------------
# Shards and merge
# ---------------------------------------------------------------------------


def test_shards_then_merge_equal_one_run(data, capsys):
    root, expected = data
    for i in range(3):
        summary = run(root, '--backend', 'attributes', '--shard', f'{i}/3')
        assert summary['total'] == len(range(i, len(expected), 3))
    names = sorted(os.listdir(root))
    shards = [f'descriptions.shard-{i}-of-3.json' for i in range(3)]
    assert set(shards) <= set(names)
    assert 'descriptions.json' not in names
    parts = [read(root, n) for n in shards]
    assert sum(len(p) for p in parts) == len(expected)
    assert not set(parts[0]) & set(parts[1])
    summary = run(root, '--merge')
    assert summary['merged'] == len(expected)
    assert summary['missing'] == 0 and summary['conflicts'] == 0
    assert read(root) == expected
    # a shard run skips what the merged file has
    os.remove(osp.join(root, shards[0]))
    assert run(root, '--backend', 'attributes', '--shard',
               '0/3')['described'] == 0
    # bad shard specs name the rule
    for bad in ('3/3', '1-3', '0/0'):
        with pytest.raises(SystemExit):
            run(root, '--backend', 'attributes', '--shard', bad)
        assert '--shard' in capsys.readouterr().err


def test_merge_without_shards(data, capsys):
    root, _ = data
    with pytest.raises(SystemExit):
        run(root, '--merge')
    assert 'no shard files' in capsys.readouterr().err


# ---------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------


def test_check_toy_descriptions_ok(toy_root, capsys):
    """The generator's own descriptions: nothing missing, no colour word in
    an infrared text."""
    root = osp.join(osp.dirname(toy_root), 'check')
    shutil.copytree(toy_root, root)
    run(root, '--backend', 'attributes')
    capsys.readouterr()
    report = run(root, '--check')
    assert report['ok']
    assert report['ir']['colour_texts'] == 0
    assert report['vis']['colour_texts'] > 0
    assert report['vis']['missing'] == report['ir']['missing'] == 0
    out = capsys.readouterr().out
    assert 'naming a colour' in out and out.rstrip().endswith('OK')


def test_check_finds_what_is_wrong(data, capsys):
    root, expected = data
    table = dict(expected)
    keys = sorted(table)
    ir = [k for k in keys if modality_of(k) == 'ir']
    vis = [k for k in keys if modality_of(k) == 'vis']
    table[ir[0]] = 'A man in a red jacket and black trousers.'
    table[ir[1]] = '   '
    del table[vis[0]]
    table[vis[1]] = table[vis[2]]  # a duplicate
    table['elsewhere/x.jpg'] = 'not a train image'
    with open(osp.join(root, 'descriptions.json'), 'w') as f:
        json.dump(table, f)
    with pytest.raises(SystemExit) as exc:
        run(root, '--check')
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith('NOT OK')
    assert 'red (1), black (1)' in out
    report = _check(root)
    assert report['ir']['colour_texts'] == 1
    assert report['ir']['colour_words'] == {'red': 1, 'black': 1}
    assert report['ir']['empty'] == 1
    assert report['vis']['missing'] == 1
    assert report['vis']['shared'] >= 2
    assert report['extra'] == 1
    # a plain run filters the stored infrared text; then only the holes
    capsys.readouterr()
    run(root, '--backend', 'attributes')
    assert _check(root)['ok']


def _check(root):
    from mmengine.config import Config
    items, _, _ = gd.train_items(Config.fromfile(TOY_CONFIG), root)
    return gd.check_descriptions(items, osp.join(root, 'descriptions.json'))


def test_check_without_file(data, capsys):
    root, _ = data
    with pytest.raises(SystemExit):
        run(root, '--check')
    err = capsys.readouterr().err
    assert 'descriptions.json" does not exist' in err


# ---------------------------------------------------------------------------
# Without transformers
# ---------------------------------------------------------------------------


def test_vlm_without_transformers(data, monkeypatch, capsys):
    root, _ = data
    monkeypatch.setitem(sys.modules, 'transformers', None)  # not installed
    with pytest.raises(SystemExit) as exc:
        run(root, '--backend', 'vlm')
    assert exc.value.code == 1
    assert 'The vlm backend needs Hugging Face transformers, an optional ' \
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
