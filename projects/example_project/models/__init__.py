# Copyright (c) mmvireid contributors. All rights reserved.
"""Importing this package registers the example model (``custom_imports``)."""
from .clip_vireid_align import CLIPVIReIDAlign

__all__ = ['CLIPVIReIDAlign']
