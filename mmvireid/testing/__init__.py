# Copyright (c) mmvireid contributors. All rights reserved.
"""Helpers shared by the test suite and the reference-parity tool."""
from .parity import (assert_recorded, generate_clip_state_dict, record,
                     state_dict_digest, uniform_tensor)

__all__ = [
    'generate_clip_state_dict', 'state_dict_digest', 'record',
    'assert_recorded', 'uniform_tensor'
]
