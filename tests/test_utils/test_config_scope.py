# Copyright (c) mmvireid contributors. All rights reserved.
"""The ``mmvireid::`` config scope and ``mmvireid/.mim`` (issue 16, item 8).

``pip install -e .`` must link configs/, tools/ and model-index.yml into
``mmvireid/.mim`` (setup.py), and MMEngine must resolve ``mmvireid::``
paths there once mmvireid is imported (mmvireid/config_scope.py).
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.hub import get_config

import mmvireid
from mmvireid import config_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def test_editable_install_has_mim_folder():
    """CI installs with ``pip install --no-build-isolation --no-deps -e .``
    in a fresh clone, so this checks setup.py's editable branch."""
    mim = osp.join(osp.dirname(mmvireid.__file__), '.mim')
    for item in MIM_ITEMS:
        path = osp.join(mim, item)
        assert osp.exists(path), (
            f'{path} is missing: run `pip install --no-build-isolation '
            '--no-deps -e .` again')
        assert osp.realpath(path) == osp.realpath(osp.join(REPO_ROOT, item))


def _load_setup():
    spec = importlib.util.spec_from_file_location(
        '_mmvireid_setup', osp.join(REPO_ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines; setup() runs under __main__
    return module


@pytest.mark.parametrize('argv,kind', [
    (['setup.py', 'editable_wheel', '--dist-dir', 'x'], 'link'),
    (['setup.py', 'develop'], 'link'),
    (['setup.py', 'bdist_wheel'], 'copy'),
    (['setup.py', 'egg_info'], None),
])
def test_setup_fills_mim_folder(tmp_path, monkeypatch, argv, kind):
    """``pip install -e .`` runs ``setup.py editable_wheel`` (PEP 660);
    mmpretrain's rule only knew ``develop``."""
    repo = tmp_path / 'repo'
    (repo / 'mmvireid').mkdir(parents=True)
    (repo / 'configs' / '_base_').mkdir(parents=True)
    (repo / 'configs' / 'a.py').write_text('x = 1\n')
    (repo / 'tools').mkdir()
    (repo / 'tools' / 'train.py').write_text('')
    (repo / 'model-index.yml').write_text('Import: []\n')
    setup = _load_setup()
    monkeypatch.setattr(setup, '__file__', str(repo / 'setup.py'))
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, 'argv', argv)
    setup.add_mim_extension()
    mim = repo / 'mmvireid' / '.mim'
    if kind is None:
        assert not mim.exists()
        return
    for item in MIM_ITEMS:
        assert (mim / item).exists()
        assert osp.islink(mim / item) == (kind == 'link')
    assert (mim / 'configs' / 'a.py').read_text() == 'x = 1\n'


def test_base_files_and_recipes_resolve(tmp_path):
    cfg_file = tmp_path / 'my_config.py'
    cfg_file.write_text("_base_ = ['mmvireid::clip_vireid_toy.py']\n"
                        'model = dict(num_classes=7)\n')
    cfg = Config.fromfile(str(cfg_file))
    toy = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'clip_vireid_toy.py'))
    assert cfg.model.num_classes == 7
    assert cfg.model.type == toy.model.type
    # (MMEngine marks the types of an external config with _scope_)
    assert [(s.name, s.epochs) for s in cfg.train_cfg.stages] == \
        [(s.name, s.epochs) for s in toy.train_cfg.stages]
    # a file of a sub-folder, MMEngine's own form
    cfg_file.write_text("_base_ = ['mmvireid::_base_/default_runtime.py']\n")
    assert Config.fromfile(str(cfg_file)).default_scope == 'mmvireid'
    # mmengine.hub.get_config, with and without a sub-folder
    assert get_config('mmvireid::clip_vireid_toy.py').model == toy.model
    example = get_config('mmvireid::examples/clip_vireid_vit_toy.py')
    assert example.filename == osp.join(
        osp.dirname(mmvireid.__file__), '.mim', 'configs', 'examples',
        'clip_vireid_vit_toy.py')


def test_scope_changes_nothing_for_other_packages():
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import get_installed_path
    assert get_installed_path('mmvireid') == osp.dirname(
        osp.abspath(mmvireid.__file__))
    mmpretrain = importlib.util.find_spec('mmpretrain').origin
    assert get_installed_path('mmpretrain') == osp.dirname(mmpretrain)
    assert MODULE2PACKAGE['mmvireid'] == 'mmvireid'
    assert MODULE2PACKAGE['mmpretrain'] == 'mmpretrain'
    config_scope.register_config_scope()  # idempotent: wraps once
    from mmengine.config import config as config_module
    wrapped = config_module.get_installed_path
    assert not hasattr(wrapped.__wrapped__, '__wrapped__')


def test_missing_mim_folder_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(config_scope, 'mim_dir',
                        lambda: str(tmp_path / '.mim'))
    with pytest.raises(FileNotFoundError) as err:
        get_config('mmvireid::clip_vireid_toy.py')
    assert str(err.value) == (
        f'"mmvireid::clip_vireid_toy.py" is looked up in "{tmp_path}/.mim/'
        'configs", which does not exist. `pip install -e .` (or `pip install '
        '.`) in the mmvireid repository creates it; run it again there.')


def test_scope_resolves_in_a_fresh_interpreter(tmp_path):
    """``import mmvireid`` is all it takes (as the tools do), from any
    folder."""
    cfg_file = tmp_path / 'c.py'
    cfg_file.write_text("_base_ = ['mmvireid::clip_vireid_toy.py']\n")
    code = ('import mmvireid\n'
            'from mmengine.config import Config\n'
            f'print(Config.fromfile({str(cfg_file)!r}).model.type)\n')
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env.pop('PYTHONPATH', None)
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=str(tmp_path),
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == 'CLIPVIReID'
