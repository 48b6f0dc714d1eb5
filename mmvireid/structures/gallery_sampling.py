# Copyright (c) mmvireid contributors. All rights reserved.
"""Per-trial gallery draws of the SYSU-MM01 and LLCM protocols.

The reference test code builds a new gallery for every trial by walking the
test identities (ascending, as 4-digit strings) and, inside each identity, the
gallery cameras in protocol order; from every existing ``(id, camera)`` folder
it keeps one randomly drawn file (single-shot) or ten (multi-shot), drawing
from the **sorted** folder listing. The full candidate listing of the gallery
modality, in that same order, therefore splits into runs of consecutive
samples sharing ``(pid, cam_id)``: one run per folder visit.

These functions work on such runs of *positions* (indices into the candidate
listing), not on file names, so the datasets (which build the gallery of one
trial) and :class:`~mmvireid.structures.ProtocolSplit` (which draws every
trial from one feature pass, for the metric and the ranking images) share a
single code path. They are pure: no global random state is read or changed.
"""
import operator
import random
from typing import Hashable, List, Optional, Sequence

import numpy as np

__all__ = ['group_consecutive', 'draw_single_shot', 'draw_multi_shot']


def group_consecutive(keys: Sequence[Hashable],
                      items: Optional[Sequence[Hashable]] = None
                      ) -> List[List[int]]:
    """Split positions ``0..len(keys)-1`` into runs of equal consecutive keys.

    A run is one ``(id, camera)`` folder visit of the reference gallery walk.
    The same key may appear again later (the reference keeps duplicated test
    ids, and then visits their folders twice); that starts a new run.

    Args:
        keys (Sequence[Hashable]): One key per candidate, e.g.
            ``(pid, cam_id)``, in the reference's listing order.
        items (Sequence[Hashable], optional): One identifier per candidate,
            e.g. the image path. When given, a run also ends where an item
            that is already in the current run shows up again. This
            separates two back-to-back visits of the same folder (a
            duplicated id that has a single camera folder), which keys alone
            cannot tell apart. Defaults to None.

    Returns:
        list[list[int]]: The runs, in order; every position appears once.

    Example:
        >>> group_consecutive([(1, 1), (1, 1), (1, 2), (2, 1), (1, 1)])
        [[0, 1], [2], [3], [4]]
    """
    if items is not None and len(items) != len(keys):
        raise ValueError(
            f'group_consecutive: `items` has {len(items)} entries but `keys` '
            f'has {len(keys)}; give one item per key.')
    groups: List[List[int]] = []
    seen: set = set()
    prev = object()  # a sentinel equal to no key
    for pos, key in enumerate(keys):
        item = items[pos] if items is not None else None
        if not groups or key != prev or (items is not None and item in seen):
            groups.append([pos])
            seen = set()
        else:
            groups[-1].append(pos)
        if items is not None:
            seen.add(item)
        prev = key
    return groups


def _check_groups(groups: Sequence[Sequence[int]], fn: str) -> None:
    for i, group in enumerate(groups):
        if len(group) == 0:
            raise ValueError(f'{fn}: group {i} is empty; every (id, camera) '
                             'folder of the gallery walk holds at least one '
                             'candidate.')


def draw_single_shot(groups: Sequence[Sequence[int]], trial: int) -> List[int]:
    """Draw one candidate per group, exactly as the reference's trial does.

    The reference calls ``random.seed(trial)`` once and then, for every
    folder in walk order, ``random.choice(sorted(os.listdir(folder)))``.
    ``random.Random(trial)`` is seeded identically and ``choice`` only looks
    at the sequence length, so drawing from each group of positions picks
    the same files without touching the global ``random`` module (the
    reference's global reseed is a side effect we do not copy).

    Args:
        groups (Sequence[Sequence[int]]): Candidate positions per folder
            visit, in walk order (see :func:`group_consecutive`); within a
            group the positions must follow the sorted file names.
        trial (int): The trial number, 0..9 in the reference test loops.

    Returns:
        list[int]: One position per group, in group order.
    """
    _check_groups(groups, 'draw_single_shot')
    # Python 3.11 refuses numpy integers as seeds; operator.index accepts
    # them and rejects floats, which would seed a different stream.
    rng = random.Random(operator.index(trial))
    return [int(rng.choice(group)) for group in groups]


def draw_multi_shot(groups: Sequence[Sequence[int]],
                    trial: int,
                    num: int = 10) -> List[int]:
    """Draw ``num`` distinct candidates per group (multi-shot gallery).

    The reference (CSDN ``gall_mode='multi'``) calls
    ``np.random.choice(files, 10, replace=False)`` on numpy's *global*,
    unseeded state, so its multi-shot galleries cannot be reproduced. Our
    documented decision: one ``np.random.RandomState(trial)`` per trial,
    used for every group in walk order, so the draw is the one the
    reference would make after ``np.random.seed(trial)``.

    Args:
        groups (Sequence[Sequence[int]]): Candidate positions per folder
            visit, in walk order.
        trial (int): The trial number; seeds the RandomState.
        num (int): Candidates per group. Defaults to 10.

    Returns:
        list[int]: ``num`` positions per group, group after group, each group
        in draw order (as the reference appends them).

    Raises:
        ValueError: If a group holds fewer than ``num`` candidates (the
            reference's ``np.random.choice`` fails the same way).
    """
    _check_groups(groups, 'draw_multi_shot')
    num = operator.index(num)
    if num < 1:
        raise ValueError(f'draw_multi_shot: num must be >= 1, got {num}.')
    rs = np.random.RandomState(operator.index(trial))
    out: List[int] = []
    for i, group in enumerate(groups):
        if len(group) < num:
            raise ValueError(
                f'draw_multi_shot: group {i} (positions {list(group)[:5]}'
                f'{"..." if len(group) > 5 else ""}) holds {len(group)} '
                f'candidates, fewer than the {num} a multi-shot gallery '
                'draws without replacement.')
        out.extend(
            int(x) for x in rs.choice(np.asarray(group), num, replace=False))
    return out
