# Copyright (c) mmvireid contributors. All rights reserved.
from .clip_image_encoder import CLIPImageEncoder

__all__ = ['CLIPImageEncoder']
