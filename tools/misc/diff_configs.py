# Copyright (c) mmvireid contributors. All rights reserved.
"""Show how two configs differ once inheritance is resolved.

    python tools/misc/diff_configs.py A.py B.py [--keys KEY ...]
        [--cfg-options k=v ...]

Both files are read with MMEngine (``_base_`` merged, ``{{_base_.x}}`` and
``{{$ENV:default}}`` substituted) and compared value by value. One line per
difference, with the dotted path of the value (list items by index):

    ~ model.num_classes: 395 -> 206        changed
    - train_cfg.stages[0].feature_cache    only in A
    + model.ife_neck: {...}                only in B

Typical uses: what a leaf config really changes against the recipe it
inherits (``configs/clip_vireid_toy.py`` vs
``configs/examples/clip_vireid_toy_short-prompt.py``), how two datasets'
recipes differ (``configs/csdn_sysu.py`` vs ``configs/csdn_regdb.py``), or
that a refactored config resolves to the same values as before. The exit
status is 0 when nothing differs and 1 otherwise, as ``diff``'s.
``--keys`` restricts the comparison to some top-level keys or dotted
prefixes (``--keys model train_cfg.stages``); ``--cfg-options`` applies
``key=value`` overrides to both configs, as ``tools/train.py`` does.
Nothing is built and ``custom_imports`` are not imported.
"""
import argparse
import sys
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

#: Stands for "no value at this path" on one side of a difference.
MISSING = object()

Difference = Tuple[str, Any, Any]


def iter_differences(a: Any, b: Any, path: str = '') -> Iterator[Difference]:
    """Yield ``(path, value_a, value_b)`` for every leaf where two config
    values differ.

    Dicts are compared key by key and lists (or tuples) item by item, so a
    change deep inside a pipeline is reported at its own path; a side
    without the key or item gets :data:`MISSING`. Values of different
    container types (a list against a tuple, a dict against a string) are
    one difference at their path.

    Args:
        a: A value of the first config (usually ``Config.to_dict()``).
        b: The value at the same path in the second config.
        path (str): The dotted path of ``a`` and ``b``; '' at the root.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f'{path}.{key}' if path else str(key)
            yield from iter_differences(
                a.get(key, MISSING), b.get(key, MISSING), sub)
    elif isinstance(a, (list, tuple)) and type(a) is type(b):
        for i in range(max(len(a), len(b))):
            yield from iter_differences(a[i] if i < len(a) else MISSING,
                                        b[i] if i < len(b) else MISSING,
                                        f'{path}[{i}]')
    elif type(a) is not type(b) or a != b:
        # type first: 1 == 1.0 == True in Python, but a config that turns
        # an int into a float or a bool has changed
        yield path, a, b


def select(differences: Sequence[Difference],
           keys: Optional[Sequence[str]]) -> List[Difference]:
    """The differences at or below one of ``keys`` (all when None)."""
    if not keys:
        return list(differences)
    return [
        d for d in differences
        if any(d[0] == k or d[0].startswith((k + '.', k + '[')) for k in keys)
    ]


def format_difference(difference: Difference) -> str:
    """One line: ``~ path: a -> b``, ``- path: a`` or ``+ path: b``."""
    path, a, b = difference
    if b is MISSING:
        return f'- {path}: {a!r}'
    if a is MISSING:
        return f'+ {path}: {b!r}'
    return f'~ {path}: {a!r} -> {b!r}'


def load(path: str, cfg_options: Optional[dict]) -> dict:
    cfg = Config.fromfile(path, import_custom_modules=False)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg.to_dict()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Show how two configs differ once inheritance is '
        'resolved (exit status 1 when they differ)')
    parser.add_argument('config_a', help='first config file')
    parser.add_argument('config_b', help='second config file')
    parser.add_argument(
        '--keys',
        nargs='+',
        help='compare only these top-level keys or dotted prefixes, e.g. '
        'model train_cfg.stages')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='key=value overrides applied to both configs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # registers the mmvireid:: config scope, so 'mmvireid::x.py' paths and
    # configs inheriting them load
    import mmvireid  # noqa: F401
    differences = select(
        list(
            iter_differences(
                load(args.config_a, args.cfg_options),
                load(args.config_b, args.cfg_options))), args.keys)
    for difference in differences:
        print(format_difference(difference))
    if not differences:
        print('no difference')
    return 1 if differences else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
