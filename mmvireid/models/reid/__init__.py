# Copyright (c) mmvireid contributors. All rights reserved.
from .base import BaseStagedReID
from .clip_vireid import CLIPVIReID

__all__ = ['BaseStagedReID', 'CLIPVIReID']
