# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/misc/diff_configs.py: the resolved difference of two configs."""
import importlib.util
import os.path as osp
import textwrap

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'diff_configs.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('diff_configs', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
MISSING = tool.MISSING


def test_differences_by_path():
    a = dict(
        model=dict(num_classes=395, head=dict(pool='avg')),
        stages=[dict(name='prompt', epochs=60),
                dict(name='finetune')],
        lr=1,
        size=(288, 144),
        only_a='x')
    b = dict(
        model=dict(num_classes=206, head=dict(pool='avg'), neck=None),
        stages=[dict(name='prompt', epochs=60, cache=dict(bs=64))],
        lr=1.0,
        size=[288, 144])
    assert list(tool.iter_differences(a, b)) == [
        ('lr', 1, 1.0),  # an int turned into a float is a change
        ('model.neck', MISSING, None),
        ('model.num_classes', 395, 206),
        ('only_a', 'x', MISSING),
        ('size', (288, 144), [288, 144]),  # tuple vs list: one difference
        ('stages[0].cache', MISSING, dict(bs=64)),
        ('stages[1]', dict(name='finetune'), MISSING),
    ]
    assert list(tool.iter_differences(a, a)) == []


def test_select_and_format():
    diffs = [('model.num_classes', 395, 206), ('model_ema', MISSING, 1),
             ('train_cfg.stages[0].epochs', 60, 5), ('lr', 1, MISSING)]
    # a prefix matches itself and what lies below it, not a longer name
    assert tool.select(diffs, ['model']) == diffs[:1]
    assert tool.select(diffs, ['train_cfg.stages']) == diffs[2:3]
    assert tool.select(diffs, None) == diffs
    assert [tool.format_difference(d) for d in diffs] == [
        '~ model.num_classes: 395 -> 206', '+ model_ema: 1',
        '~ train_cfg.stages[0].epochs: 60 -> 5', '- lr: 1'
    ]


@pytest.fixture
def base_and_leaf(tmp_path):
    (tmp_path / 'base.py').write_text(
        textwrap.dedent("""\
        model = dict(type='CLIPVIReID', num_classes=395,
                     head=dict(type='BNNeckHead', pool='avg'))
        train_cfg = dict(stages=[dict(name='prompt', epochs=60),
                                 dict(name='finetune', epochs=120)])
        """))
    (tmp_path / 'leaf.py').write_text(
        textwrap.dedent("""\
        _base_ = ['./base.py']
        model = dict(head=dict(pool='gem'))
        train_cfg = dict(stages=[dict(name='prompt', epochs=5),
                                 dict(name='finetune', epochs=120)])
        """))
    return str(tmp_path / 'base.py'), str(tmp_path / 'leaf.py')


def test_cli_prints_the_resolved_difference(base_and_leaf, capsys):
    base, leaf = base_and_leaf
    assert tool.main([base, leaf]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "~ model.head.pool: 'avg' -> 'gem'",
        '~ train_cfg.stages[0].epochs: 60 -> 5',
    ]
    assert tool.main([base, leaf, '--keys', 'train_cfg']) == 1
    assert capsys.readouterr().out.splitlines() == [
        '~ train_cfg.stages[0].epochs: 60 -> 5'
    ]
    # an override applied to both sides changes no difference
    assert tool.main([base, leaf, '--cfg-options',
                      'model.num_classes=206']) == 1
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert tool.main([leaf, leaf]) == 0
    assert capsys.readouterr().out == 'no difference\n'


def test_cli_on_two_shipped_recipes(capsys):
    # csdn_sysu.py and csdn_regdb.py share the model base: the models
    # differ in the number of training identities only
    sysu = osp.join(REPO_ROOT, 'configs', 'csdn_sysu.py')
    regdb = osp.join(REPO_ROOT, 'configs', 'csdn_regdb.py')
    assert tool.main([sysu, regdb, '--keys', 'model', 'train_cfg']) == 1
    assert capsys.readouterr().out.splitlines() == [
        '~ model.num_classes: 395 -> 206'
    ]
