# Copyright (c) mmvireid contributors. All rights reserved.
from .device import (checks_enabled, device_checks, device_checks_enabled,
                     is_host_tensor, set_device_checks, to_device)
from .open_clip_builder import (build_open_clip, check_pretrained_activation,
                                convert_openai_torchscript, init_clip_tower,
                                is_torchscript_archive, load_clip_state_dict,
                                load_clip_weights, resnet_grid_size,
                                set_attnpool_grid)
from .pos_embed import infer_pos_embed_grid, resize_grid_pos_embed

__all__ = [
    'build_open_clip', 'check_pretrained_activation', 'init_clip_tower',
    'load_clip_weights', 'load_clip_state_dict', 'convert_openai_torchscript',
    'is_torchscript_archive', 'resnet_grid_size', 'resize_grid_pos_embed',
    'infer_pos_embed_grid', 'set_attnpool_grid', 'checks_enabled',
    'device_checks', 'device_checks_enabled', 'is_host_tensor',
    'set_device_checks', 'to_device'
]
