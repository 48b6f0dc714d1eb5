# Copyright (c) mmvireid contributors. All rights reserved.
"""The two modalities: their names, integer ids and retrieval directions.

This is the one place that says which modality is which. Datasets tag every
sample with a modality *name* (``'vis'`` / ``'ir'``); tensors carry the
integer *id* (:data:`VIS_ID` / :data:`IR_ID`) so that batches can be split by
modality without strings on the device.
"""
from typing import Dict, Tuple

__all__ = [
    'VIS', 'IR', 'MODALITIES', 'VIS_ID', 'IR_ID', 'MODALITY_IDS',
    'OTHER_MODALITY', 'MODALITY_LABELS', 'IR2VIS', 'VIS2IR', 'DIRECTIONS',
    'modality_id', 'check_modality', 'direction_modalities'
]

#: modality names, as datasets and data samples store them
VIS: str = 'vis'
IR: str = 'ir'
#: both names, visible first (the order of the paired sampler's batches)
MODALITIES: Tuple[str, str] = (VIS, IR)

#: integer ids in tensors: 0 visible, 1 infrared
VIS_ID: int = 0
IR_ID: int = 1
MODALITY_IDS: Dict[str, int] = {VIS: VIS_ID, IR: IR_ID}

#: the other modality of each name (cross-modality retrieval)
OTHER_MODALITY: Dict[str, str] = {VIS: IR, IR: VIS}
#: how drawings and reports label each modality
MODALITY_LABELS: Dict[str, str] = {VIS: 'VIS', IR: 'IR'}

#: retrieval direction names: infrared queries against a visible gallery,
#: and the reverse
IR2VIS: str = 'ir2vis'
VIS2IR: str = 'vis2ir'
#: retrieval direction name -> (query modality, gallery modality)
DIRECTIONS: Dict[str, Tuple[str, str]] = {
    IR2VIS: (IR, VIS),
    VIS2IR: (VIS, IR),
}


def check_modality(name: str, what: str = 'modality') -> str:
    """Return ``name`` if it is a modality name, else raise a clear error.

    Args:
        name (str): ``'vis'`` or ``'ir'``.
        what (str): how the value is called in the message (a key or
            argument name).
    """
    if name not in MODALITY_IDS:
        raise ValueError(f'{what} must be one of {list(MODALITIES)}, got '
                         f'{name!r}.')
    return name


def modality_id(name: str) -> int:
    """Integer id of a modality name (``'vis'`` -> 0, ``'ir'`` -> 1)."""
    return MODALITY_IDS[check_modality(name)]


def direction_modalities(direction: str) -> Tuple[str, str]:
    """``(query modality, gallery modality)`` of a direction name.

    Args:
        direction (str): ``'ir2vis'`` (infrared queries, visible gallery) or
            ``'vis2ir'``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f'direction must be one of {list(DIRECTIONS)}, got '
                         f'{direction!r}.')
    return DIRECTIONS[direction]
