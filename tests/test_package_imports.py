# Copyright (c) mmvireid contributors. All rights reserved.
"""The package's import structure: who may import whom, and no cycles.

The modules are found with :mod:`pkgutil` and read with :mod:`ast`, not
imported, so the test sees function-level (lazy) imports too and does not
depend on what an import happens to execute.
"""
import ast
import os.path as osp
import pkgutil
from typing import Dict, List, NamedTuple, Optional, Set

import pytest

import mmvireid

ROOT = 'mmvireid'


class ImportEdge(NamedTuple):
    """One import statement's target, as the importing module sees it."""
    source: str  # importing module, e.g. 'mmvireid.apis.inferencer'
    target: str  # imported mmvireid module, e.g. 'mmvireid.structures'
    lineno: int
    module_level: bool  # False inside a function body (a lazy import)


def package_modules(package_dir: str = osp.dirname(mmvireid.__file__),
                    name: str = ROOT) -> Dict[str, str]:
    """``{module name: source file}`` of every module of the package in
    ``package_dir``, found on disk without importing anything."""
    modules = {name: osp.join(package_dir, '__init__.py')}

    def walk(path: str, prefix: str) -> None:
        for info in pkgutil.iter_modules([path], prefix):
            leaf = info.name.rsplit('.', 1)[1]
            if info.ispkg:
                sub = osp.join(path, leaf)
                modules[info.name] = osp.join(sub, '__init__.py')
                walk(sub, info.name + '.')
            else:
                modules[info.name] = osp.join(path, leaf + '.py')

    walk(package_dir, name + '.')
    return modules


def _resolve(module: str, is_package: bool, level: int,
             name: Optional[str]) -> str:
    """Absolute name of ``from <level dots><name> import ...``."""
    if level == 0:
        return name or ''
    base = module.split('.')
    # A package's own __init__ is its level-1 anchor; a module's is its
    # parent package.
    base = base[:len(base) - level + (1 if is_package else 0)]
    return '.'.join(base + ([name] if name else []))


def import_edges(modules: Dict[str, str],
                 root: str = ROOT) -> List[ImportEdge]:
    """Every import of a module of package ``root`` by one of its modules.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that
    is a module, else of ``pkg``.
    """
    edges = []
    for module, path in modules.items():
        is_package = path.endswith('__init__.py')
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
        for node, module_level in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                pkg = _resolve(module, is_package, node.level, node.module)
                targets = [
                    f'{pkg}.{alias.name}'
                    if f'{pkg}.{alias.name}' in modules else pkg
                    for alias in node.names
                ]
            for target in targets:
                if target == root or target.startswith(root + '.'):
                    edges.append(
                        ImportEdge(module, target, node.lineno, module_level))
    return edges


def _imports(tree: ast.AST):
    """``(import node, is it module level)`` pairs of a parsed file; class
    bodies run at import time, so they count as module level."""

    def visit(node, module_level):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, module_level
            inner = module_level and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from visit(child, inner)

    yield from visit(tree, True)


def subpackage(module: str) -> str:
    """``'mmvireid.apis.inferencer'`` -> ``'mmvireid.apis'``; top-level
    modules (``mmvireid.registry``) are their own node."""
    return '.'.join(module.split('.')[:2])


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of a directed graph as ``[a, b, ..., a]``, or None.

    Args:
        graph (dict[str, set[str]]): ``node -> nodes it points to``.
    """
    state: Dict[str, int] = {}  # 1: on the current path, 2: finished
    path: List[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.fixture(scope='module')
def edges() -> List[ImportEdge]:
    return import_edges(package_modules())


def _where(found: List[ImportEdge]) -> str:
    return '\n'.join(f'  {e.source}:{e.lineno} imports {e.target}'
                     f'{"" if e.module_level else " (in a function)"}'
                     for e in found)


def test_import_walk_on_a_hand_made_package(tmp_path):
    files = {
        '__init__.py':
        'from .a import x\n',
        'a.py': ('import os\nfrom . import b\nx = 1\n\n\ndef f():\n'
                 '    from .sub import c\n'),
        'b.py':
        '',
        'sub/__init__.py':
        'from .. import b as bb\n',
        'sub/c.py': ('import pkg.a\n\n\nclass K:\n'
                     '    from pkg.sub import c\n'),
    }
    for rel, text in files.items():
        (tmp_path / 'pkg' / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'pkg' / rel).write_text(text)
    modules = package_modules(str(tmp_path / 'pkg'), 'pkg')
    assert sorted(modules) == ['pkg', 'pkg.a', 'pkg.b', 'pkg.sub', 'pkg.sub.c']
    edges = {(e.source, e.target, e.module_level)
             for e in import_edges(modules, 'pkg')}
    assert edges == {
        ('pkg', 'pkg.a', True),  # relative, in a package's __init__
        ('pkg.a', 'pkg.b', True),  # `from . import b`: the module b
        ('pkg.a', 'pkg.sub.c', False),  # in a function: lazy
        ('pkg.sub', 'pkg.b', True),  # two dots from a package
        ('pkg.sub.c', 'pkg.a', True),  # absolute
        ('pkg.sub.c', 'pkg.sub.c', True),  # a class body runs at import
    }
    assert subpackage('pkg.sub.c') == 'pkg.sub'


def test_the_package_walk_sees_every_room(edges):
    modules = package_modules()
    assert 'mmvireid.structures.modality' in modules
    assert 'mmvireid.evaluation.functional.vireid_eval' in modules
    sources = {subpackage(e.source) for e in edges}
    assert {
        'mmvireid.apis', 'mmvireid.datasets', 'mmvireid.evaluation',
        'mmvireid.models', 'mmvireid.structures', 'mmvireid.visualization'
    } <= sources


def test_models_do_not_import_engine_apis_or_visualization(edges):
    banned = ('mmvireid.engine', 'mmvireid.apis', 'mmvireid.visualization')
    found = [
        e for e in edges if subpackage(e.source) == 'mmvireid.models'
        and subpackage(e.target) in banned
    ]
    assert not found, ('mmvireid.models must not import the engine, apis or '
                       'visualization:\n' + _where(found))


def test_structures_import_nothing_else_of_mmvireid(edges):
    found = [
        e for e in edges if subpackage(e.source) == 'mmvireid.structures'
        and subpackage(e.target) != 'mmvireid.structures'
    ]
    assert not found, ('mmvireid.structures must stand alone:\n' +
                       _where(found))


def test_no_import_cycle_between_subpackages(edges):
    graph: Dict[str, Set[str]] = {}
    for e in edges:
        src, dst = subpackage(e.source), subpackage(e.target)
        if e.module_level and src != dst and dst != ROOT:
            graph.setdefault(src, set()).add(dst)
    cycle = find_cycle(graph)
    if cycle:
        hops = [
            e for a, b in zip(cycle, cycle[1:]) for e in edges
            if e.module_level and subpackage(e.source) == a
            and subpackage(e.target) == b
        ]
        pytest.fail('import cycle ' + ' -> '.join(cycle) + '\n' + _where(hops))


def test_find_cycle_detects_a_hand_made_cycle():
    acyclic = {'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}
    assert find_cycle(acyclic) is None
    cyclic = {'a': {'b'}, 'b': {'c'}, 'c': {'a', 'd'}, 'd': set()}
    assert find_cycle(cyclic) == ['a', 'b', 'c', 'a']
    assert find_cycle({'x': {'x'}}) == ['x', 'x']
    # a cycle reached only through an acyclic prefix
    assert find_cycle({'p': {'q'}, 'q': {'r'}, 'r': {'q'}}) == ['q', 'r', 'q']
