# Copyright (c) mmvireid contributors. All rights reserved.
from .base import BaseVIReIDDataset
from .descriptions import load_descriptions, read_descriptions
from .image_cache import DecodedImageCache
from .llcm import LLCMDataset
from .paths import parse_reid_path
from .regdb import RegDBDataset
from .samplers import *  # noqa: F401,F403
from .sysu_mm01 import SYSUMM01Dataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseVIReIDDataset', 'SYSUMM01Dataset', 'RegDBDataset', 'LLCMDataset',
    'load_descriptions', 'read_descriptions', 'DecodedImageCache',
    'parse_reid_path'
]
