# Copyright (c) mmvireid contributors. All rights reserved.
from .base import BaseStagedReID
from .clip4vireid import CLIP4VIReID
from .clip_vireid import CLIPVIReID
from .csdn import CSDN
from .eees import EEES

__all__ = ['BaseStagedReID', 'CLIPVIReID']
__all__ += ['CLIP4VIReID']
__all__ += ['EEES']
__all__ += ['CSDN']
