# Copyright (c) mmvireid contributors. All rights reserved.
import json
import os
import os.path as osp

import pytest

from mmvireid.datasets import RegDBDataset, load_descriptions
from mmvireid.datasets.descriptions import normalize_key


def _items(root, rels):
    return [dict(img_path=osp.join(root, r), gt_label=0) for r in rels]


def _write(path, obj):
    with open(path, 'w') as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def test_attach_and_normalise(tmp_path):
    root = str(tmp_path)
    _write(
        tmp_path / 'd.json', {
            './cam1/0001/0001.jpg': '  A man.  ',
            'cam3//0001/0002.jpg': 'A person.',
            'unused.jpg': ''
        })
    items = _items(root, ['cam1/0001/0001.jpg', 'cam3/0001/0002.jpg'])
    out = load_descriptions('d.json', items, root)  # relative to data_root
    assert out is items
    assert [d['text'] for d in items] == ['A man.', 'A person.']
    # Absolute paths work too.
    items = _items(root, ['cam3/0001/0002.jpg'])
    load_descriptions(str(tmp_path / 'd.json'), items, root)
    assert items[0]['text'] == 'A person.'
    assert normalize_key('a\\b/./c.jpg') == 'a/b/c.jpg'


def test_missing_and_empty_texts(tmp_path):
    root = str(tmp_path)
    _write(tmp_path / 'd.json', {'a/1.jpg': 'x', 'a/2.jpg': '   '})
    items = _items(root, ['a/1.jpg', 'a/2.jpg', 'a/3.jpg'])
    with pytest.raises(ValueError) as err:
        load_descriptions('d.json', items, root)
    msg = str(err.value)
    json_path = osp.join(root, 'd.json')
    assert msg.startswith(
        f'2 of 3 training images have no (or an empty) description in '
        f'"{json_path}"; the first is "a/2.jpg"')
    assert 'python tools/generate_descriptions.py' in msg


def test_malformed_files(tmp_path):
    root = str(tmp_path)
    items = _items(root, ['a/1.jpg'])
    with pytest.raises(FileNotFoundError) as err:
        load_descriptions('nothing.json', items, root)
    assert f'"{osp.join(root, "nothing.json")}" does not exist' in \
        str(err.value)
    assert 'tools/generate_descriptions.py' in str(err.value)

    _write(tmp_path / 'list.json', ['a/1.jpg'])
    with pytest.raises(
            ValueError, match='must hold one JSON object .* but '
            'holds a list'):
        load_descriptions('list.json', items, root)
    _write(tmp_path / 'num.json', {'a/1.jpg': 3})
    with pytest.raises(
            ValueError,
            match='description of "a/1.jpg" in .* '
            'must be a string, but is a int'):
        load_descriptions('num.json', items, root)
    _write(tmp_path / 'broken.json', '{"a/1.jpg": ')
    with pytest.raises(ValueError, match='is not valid JSON'):
        load_descriptions('broken.json', items, root)


def test_dataset_integration(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'idx'))
    lines = dict(
        visible=['Visible/1/a.bmp 0', 'Visible/2/b.bmp 1'],
        thermal=['Thermal/1/c.bmp 0', 'Thermal/2/d.bmp 1'])
    for split in ('train', 'test'):
        for name, ls in lines.items():
            if split == 'test':
                # other people than training (an overlap is an error)
                ls = [
                    ln.replace('/1/', '/3/').replace('/2/', '/4/') for ln in ls
                ]
            _write(
                osp.join(root, 'idx', f'{split}_{name}_1.txt'),
                '\n'.join(ls) + '\n')
    texts = {
        'Visible/1/a.bmp': 'red coat',
        'Visible/2/b.bmp': 'blue coat',
        'Thermal/1/c.bmp': 'coat',
    }
    _write(tmp_path / 'descriptions.json', texts)
    with pytest.raises(ValueError, match='the first is "Thermal/2/d.bmp"'):
        RegDBDataset(root, split='train', descriptions='descriptions.json')
    texts['Thermal/2/d.bmp'] = 'jacket'
    _write(tmp_path / 'descriptions.json', texts)
    ds = RegDBDataset(root, split='train', descriptions='descriptions.json')
    assert [d['text'] for d in ds.get_data_list()] == \
        ['red coat', 'blue coat', 'coat', 'jacket']
    # The test split ignores descriptions (and the file is not even read).
    test = RegDBDataset(root, split='test', descriptions='missing.json')
    assert all('text' not in d for d in test.get_data_list())
