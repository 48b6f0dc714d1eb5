# Copyright (c) mmvireid contributors. All rights reserved.
"""User errors: one clear message instead of a traceback.

:class:`UserInputError` is raised for input a user must fix (paths, config
values); :func:`run_or_explain` prints it, and the other errors
:func:`explain_error` recognises, as one ``ERROR:`` line with exit code 1.
"""
import difflib
import inspect
import re
import sys
from typing import Callable, Optional

import mmengine.registry as mmengine_registry
from mmengine.registry import Registry

import mmvireid.registry as mmvireid_registry
from .fileio import DiskFullError

__all__ = [
    'UserInputError',
    'closest_names',
    'explain_error',
    'run_or_explain',
]


class UserInputError(ValueError):
    """An error in the user's input (paths, config values) rather than a bug.

    The tools print its message alone, without a traceback.
    """


def _registries():
    """Every registry a config ``type`` may be looked up in: mmvireid's and
    MMEngine's roots (which reach mmcv and other scopes)."""
    found = []
    for module in (mmvireid_registry, mmengine_registry):
        for value in vars(module).values():
            if isinstance(value, Registry) and value not in found:
                found.append(value)
    return found


def _registered_names(registry, with_scopes: bool = False):
    """Names ``registry`` resolves: its own, its ancestors', and with
    ``with_scopes`` the ``scope.Name`` of every registry under its root."""
    names = set()
    node = registry
    while node is not None:
        names.update(node.module_dict)
        root, node = node, node.parent
    if with_scopes:
        stack = list(root.children.values())
        while stack:
            child = stack.pop()
            names.update(f'{child.scope}.{n}' for n in child.module_dict)
            stack.extend(child.children.values())
    return names


def closest_names(name: str, candidates, n: int = 3):
    """Up to ``n`` of ``candidates`` closest to ``name``, for "did you mean"
    hints: a case-insensitive equal name first, then the names within 0.1
    of the best similarity (at least 0.6). A scoped name (``scope.Name``)
    is compared with the names of the same scope, without the scope."""
    scope, _, bare = name.rpartition('.')
    pool = {}
    for cand in set(candidates):
        cand_scope, _, cand_bare = cand.rpartition('.')
        if cand_scope == scope:
            pool[cand] = cand_bare
    exact = sorted(c for c, b in pool.items() if b.lower() == bare.lower())
    scored = sorted(
        ((difflib.SequenceMatcher(None, bare.lower(), b.lower()).ratio(), c)
         for c, b in pool.items() if c not in exact),
        key=lambda item: (-item[0], item[1]))
    scored = [(r, c) for r, c in scored if r >= 0.6]
    close = [c for r, c in scored if r >= scored[0][0] - 0.1] if scored \
        else []
    return (exact + close)[:n]


def _did_you_mean(names) -> str:
    if not names:
        return ''
    return ' Did you mean ' + ' or '.join(f'"{n}"' for n in names) + '?'


_UNREGISTERED = re.compile(
    r'(?P<type>\S+) is not in the (?:(?P<scope>[\w.]+)::)?(?P<registry>.+?) '
    r'registry')
_UNEXPECTED_KWARG = re.compile(
    r'(?P<cls>\w+)\.__init__\(\) got an unexpected keyword argument '
    r"'(?P<key>\w+)'")


def _registry_of(scope: Optional[str], name: str):
    for registry in _registries():
        if registry.name == name and scope in (None, registry.scope):
            return registry
    return None


def _init_arguments(cls):
    """Keyword names ``cls(...)`` accepts (following ``**kwargs`` into the
    base classes); None if it accepts anything."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names.update(
            p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            names.discard('self')
            return names
    return None


def explain_error(error: BaseException) -> Optional[str]:
    """A one-paragraph explanation of a user error, or None for a bug.

    Recognised: :class:`UserInputError`, missing files, an unregistered
    component ``type`` (with the closest registered names), an unknown
    argument of a component (with the closest argument names), unreadable or
    unsafe checkpoints and undecodable images.
    """
    # Not at the top: the engine and .checkpoint import this module (a
    # cycle), and the datasets are an upper layer utils does not load.
    from mmvireid.datasets.transforms import CorruptImageError
    from mmvireid.engine.hooks import NonFiniteLossError
    from .checkpoint import CorruptCheckpointError, UnsafeCheckpointError
    if isinstance(error, (UserInputError, NonFiniteLossError, DiskFullError)):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return error.args[0] if error.args and isinstance(error.args[0],
                                                          str) else str(error)
    if isinstance(error, (UnsafeCheckpointError, CorruptCheckpointError,
                          CorruptImageError)):
        return str(error)
    text = error.args[0] if error.args and isinstance(error.args[0],
                                                      str) else str(error)
    if isinstance(error, KeyError):
        match = _UNREGISTERED.search(text)
        if match:
            type_name = match.group('type').strip('`\'"')
            registry = _registry_of(
                match.group('scope'), match.group('registry'))
            names = [] if registry is None else closest_names(
                type_name,
                _registered_names(registry, with_scopes='.' in type_name))
            where = match.group('registry') if registry is None else \
                f'{registry.scope}::{registry.name}'
            return (f'unknown {match.group("registry")} type "{type_name}" '
                    f'(not in the {where} registry).' + _did_you_mean(names))
    if isinstance(error, TypeError):
        match = _UNEXPECTED_KWARG.search(text)
        if match:
            cls = None
            for registry in _registries():
                try:
                    cls = registry.get(match.group('cls'))
                except Exception:
                    cls = None
                if cls is not None:
                    break
            accepted = _init_arguments(cls) if isinstance(cls, type) else None
            key = match.group('key')
            hint = _did_you_mean(closest_names(key, accepted or ()))
            known = '' if not accepted else \
                f' It accepts: {", ".join(sorted(accepted))}.'
            return (
                f'{match.group("cls")} got an unknown config key "{key}".' +
                hint + known)
    return None


def run_or_explain(fn: Callable):
    """Run ``fn``; user errors become one clear message and exit code 1.

    Missing files, :class:`UserInputError`, unreadable or unsafe checkpoints,
    unregistered component types and unknown component arguments are user
    errors (see :func:`explain_error`): a deep traceback would only hide a
    message that already names the file, key or value at fault. Anything
    else is re-raised with its traceback.
    """
    try:
        return fn()
    except Exception as e:  # noqa: B902 - re-raised unless explained
        msg = explain_error(e)
        if msg is None:
            raise
        print(f'ERROR: {msg}', file=sys.stderr)
        sys.exit(1)
