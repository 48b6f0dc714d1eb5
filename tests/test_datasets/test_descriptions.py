# Copyright (c) mmvireid contributors. All rights reserved.
import json
import os
import os.path as osp

import pytest

from mmvireid.datasets import RegDBDataset, load_descriptions
from mmvireid.datasets.descriptions import normalize_key

ROOT = osp.join(osp.dirname(__file__), '..', '..')


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


# ---------------------------------------------------------------------------
# Colour-free infrared text
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('text, expected', [
    # the rewrite output: colours inside hair, garment, bag fields
    ('A man with short black hair, wearing a white t-shirt, blue jeans and '
     'shoes, carrying a red backpack.',
     'A man with short hair, wearing a t-shirt, jeans and shoes, carrying '
     'a backpack.'),
    # articles follow the next word; modifiers go with their colour
    ('A woman wearing an orange striped top and light blue trousers.',
     'A woman wearing a striped top and trousers.'),
    # several colours joined; hyphenated forms; -haired
    ('A grey-haired man in a black and white checked shirt, dark-green '
     'pants.', 'A man in a checked shirt, pants.'),
    ('A black-and-white striped top, a red/white bag.',
     'A striped top, a bag.'),
    ('A person wearing a red, white and blue jacket.',
     'A person wearing a jacket.'),
    # noun uses take their preposition or verb with them
    ('The person is dressed in black.', 'The person is dressed.'),
    ('His shirt is black and his pants are blue.',
     'His shirt and his pants.'),
    # brightness alone is what an IR image shows: kept
    ('A man wearing a dark striped top and light trousers.',
     'A man wearing a dark striped top and light trousers.'),
    ('A man in a light-coloured jacket.', 'A man in a light jacket.'),
    ('A man in a multi-colored top with a reddish-brown bag.',
     'A man in a top with a bag.'),
    ('A blonde woman in NAVY pants.', 'A woman in pants.'),
    ('Black shoes.', 'Shoes.'),
    ('Black.', ''),
])
def test_strip_colour_words(text, expected):
    from mmvireid.datasets.descriptions import (find_colour_words,
                                                strip_colour_words)
    out = strip_colour_words(text)
    assert out == expected
    assert find_colour_words(out) == []
    assert strip_colour_words(out) == out  # idempotent


def test_colour_words_are_whole_words():
    from mmvireid.datasets.descriptions import (COLOUR_MODIFIERS,
                                                find_colour_words,
                                                has_colour_word)

    # any case; hyphenated parts count
    assert find_colour_words('A Red top, grey-ish? no: greyish shoes') == [
        'red', 'grey', 'greyish'
    ]
    # no colour inside another word, modifiers alone are no colour
    for text in ('A tired man with a credit card', 'Bluetooth headphones',
                 'A dark top and a light bag', 'An infrared photo'):
        assert not has_colour_word(text), text
    assert 'light' in COLOUR_MODIFIERS


def test_toy_captions_share_the_word_list():
    """One home for the list: the toy palette is part of it, and the toy
    module's check is the package's."""
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    try:
        import toy_captions
    finally:
        sys.path.pop(0)
    from mmvireid.datasets.descriptions import COLOUR_WORDS
    assert set(toy_captions.PALETTE) <= set(COLOUR_WORDS)
    assert toy_captions.has_colour_word('a beige coat')  # not in the palette
    assert not toy_captions.has_colour_word('a dark coat')


def test_purify_infrared_and_audit():
    from mmvireid.datasets.descriptions import (audit_descriptions,
                                                purify_infrared)
    texts = {'v.jpg': 'A man in a red top.', 'i.jpg': 'A man in a red top.',
             'j.jpg': 'A man.', 'e.jpg': ' ', 'x.jpg': 'other split'}
    mods = {'v.jpg': 'vis', 'i.jpg': 'ir', 'j.jpg': 'ir', 'e.jpg': 'ir',
            'm.jpg': 'vis'}
    clean, changed = purify_infrared(texts, mods)
    assert changed == ['i.jpg']
    assert clean['i.jpg'] == 'A man in a top.'
    assert clean['v.jpg'] == texts['v.jpg']  # visible texts keep colours
    report = audit_descriptions(texts, mods)
    assert report['vis']['images'] == 2 and report['vis']['missing'] == 1
    assert report['vis']['colour_texts'] == 1
    assert report['ir']['images'] == 3 and report['ir']['texts'] == 2
    assert report['ir']['empty'] == 1
    assert report['ir']['colour_words'] == {'red': 1}
    assert report['ir']['words'] == dict(min=2, mean=4.0, median=4.0, max=6)
    assert report['extra'] == 1
    assert audit_descriptions(clean, mods)['ir']['colour_texts'] == 0
