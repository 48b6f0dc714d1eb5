# Copyright (c) mmvireid contributors. All rights reserved.
"""The ``mmvireid::`` config scope of MMEngine.

MMEngine resolves ``_base_ = 'mmvireid::_base_/default_runtime.py'`` and
``mmengine.hub.get_config('mmvireid::clip_vireid_toy.py')`` to
``<package>/.mim/configs/...``, the folder ``setup.py`` fills with links
(editable install) or copies (wheel) of ``configs/``, ``tools/`` and
``model-index.yml``. Three things stop MMEngine 0.10.7 from doing so for
mmvireid, and :func:`register_config_scope` (run by ``import mmvireid``)
fixes each, for the ``mmvireid`` package only:

1. Only the packages of ``mmengine.config.utils.MODULE2PACKAGE`` (the
   OpenMMLab codebases) may be named: ``mmvireid`` is added to it.
2. ``mmengine.utils.get_installed_path`` asks ``pkg_resources``, which
   answers ``site-packages/mmvireid`` for an editable (PEP 660) install, a
   folder that does not exist: the package's own folder is answered
   instead.
3. A ``package::`` path must contain a ``/``, so the recipes at the top of
   ``configs/`` could not be named: ``mmvireid::<name>.py`` is accepted.

A config that names the scope must therefore be read after ``import
mmvireid`` (the tools import it first). ``mim train mmvireid ...`` runs in
openmim's own process, whose lookup (``pkg_resources``) cannot be changed
from here: see ``docs/en/advanced_guides/troubleshooting.md``.
"""
import os.path as osp
import re
from typing import Tuple

__all__ = ['PACKAGE', 'package_dir', 'mim_dir', 'register_config_scope']

PACKAGE = 'mmvireid'
#: Set on the wrappers, so that registering twice wraps once.
_MARK = '_mmvireid_scope'


def package_dir() -> str:
    """The folder of the imported ``mmvireid`` package."""
    return osp.dirname(osp.abspath(__file__))


def mim_dir() -> str:
    """``<package>/.mim``: links or copies of configs/, tools/ and
    model-index.yml (made by ``pip install [-e] .``)."""
    return osp.join(package_dir(), '.mim')


def _wrap_installed_path(original):

    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            return package_dir()
        return original(package)

    get_installed_path.__doc__ = original.__doc__
    get_installed_path.__wrapped__ = original
    setattr(get_installed_path, _MARK, True)
    return get_installed_path


def _wrap_package_and_cfg_path(original):

    def _get_package_and_cfg_path(cfg_path: str) -> Tuple[str, str]:
        if cfg_path.startswith(f'{PACKAGE}::') and \
                not osp.isdir(osp.join(mim_dir(), 'configs')):
            # MMEngine would only say that <package>/.mim/configs/<name>
            # does not exist.
            raise FileNotFoundError(
                f'"{cfg_path}" is looked up in "{mim_dir()}/configs", which '
                'does not exist. `pip install -e .` (or `pip install .`) in '
                'the mmvireid repository creates it; run it again there.')
        # MMEngine asks for 'package::folder/name'; the recipes live at the
        # top of configs/, so 'mmvireid::name.py' is accepted as well.
        match = re.fullmatch(rf'{PACKAGE}::([^/:]+)', cfg_path)
        if match:
            return PACKAGE, match.group(1)
        return original(cfg_path)

    _get_package_and_cfg_path.__doc__ = original.__doc__
    _get_package_and_cfg_path.__wrapped__ = original
    setattr(_get_package_and_cfg_path, _MARK, True)
    return _get_package_and_cfg_path


def register_config_scope() -> None:
    """Make MMEngine resolve ``mmvireid::`` config paths (see the module
    docstring). Idempotent; a MMEngine without one of the patched names
    keeps its own behaviour for it."""
    import mmengine.config.config as config_module
    import mmengine.config.utils as config_utils
    import mmengine.utils as mmengine_utils
    import mmengine.utils.package_utils as package_utils
    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    modules = [config_module, config_utils, mmengine_utils, package_utils]
    try:
        import mmengine.hub.hub as hub_module
        modules.append(hub_module)
    except ImportError:  # pragma: no cover - hub is part of MMEngine
        pass
    for module in modules:
        for name, wrap in (('get_installed_path', _wrap_installed_path),
                           ('_get_package_and_cfg_path',
                            _wrap_package_and_cfg_path)):
            original = getattr(module, name, None)
            if original is not None and not getattr(original, _MARK, False):
                setattr(module, name, wrap(original))
