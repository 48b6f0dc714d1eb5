# Copyright (c) mmvireid contributors. All rights reserved.
"""What an image path in a dataset layout says: person id and camera."""
import re
from typing import Dict, Optional

from mmvireid.structures import IR, VIS
from .regdb import CAM_IDS as REGDB_CAM_IDS

__all__ = ['parse_reid_path']

# ".../cam3/0004/0001.jpg" (SYSU-MM01, LLCM, the toy data) and
# ".../Thermal/12/x.bmp" (RegDB).
_CAM_PID = re.compile(r'(?:^|/)cam(\d+)/(\d+)/[^/]+$')
_REGDB = re.compile(r'(?:^|/)(Visible|Thermal)/(\d+)/[^/]+$')
_REGDB_FOLDERS = dict(Visible=VIS, Thermal=IR)


def parse_reid_path(path: str) -> Dict[str, Optional[int]]:
    """Person id and camera number from a path in a dataset layout.

    ``.../camC/PPPP/<file>`` (SYSU-MM01, LLCM, the toy data) gives camera C
    and person id PPPP; ``.../Visible|Thermal/<pid>/<file>`` (RegDB) gives
    the person id and camera 1 (visible) or 2 (thermal), the numbers
    :class:`~mmvireid.datasets.RegDBDataset` uses. Any other path gives
    ``None`` for both.

    Args:
        path (str): An image path ('/' or '\\' separated).

    Returns:
        dict: ``pid`` and ``cam_id`` (int or None).
    """
    path = path.replace('\\', '/')
    m = _CAM_PID.search(path)
    if m:
        return dict(pid=int(m.group(2)), cam_id=int(m.group(1)))
    m = _REGDB.search(path)
    if m:
        return dict(
            pid=int(m.group(2)),
            cam_id=REGDB_CAM_IDS[_REGDB_FOLDERS[m.group(1)]])
    return dict(pid=None, cam_id=None)
