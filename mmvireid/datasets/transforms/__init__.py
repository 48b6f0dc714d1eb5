# Copyright (c) mmvireid contributors. All rights reserved.
"""Data transforms of the VI-ReID pipelines."""
from .channel_aug import ChannelAdapGray, ChannelExchange, ChannelRandomErasing
from .formatting import PackVIReIDInputs
from .loading import CorruptImageError, LoadImageFromFile
from .wrappers import ModalityDispatch

__all__ = [
    'ChannelRandomErasing', 'ChannelExchange', 'ChannelAdapGray',
    'ModalityDispatch', 'PackVIReIDInputs', 'LoadImageFromFile',
    'CorruptImageError'
]
