# Copyright (c) mmvireid contributors. All rights reserved.
from .checkpoint import (UnsafeCheckpointError,
                         register_safe_checkpoint_loader, safe_load_checkpoint)
from .collect_env import collect_env
from .setup_env import register_all_modules

# Local checkpoints go through the safe loader as soon as mmvireid.utils is
# imported (tools import it before building a Runner).
register_safe_checkpoint_loader()

__all__ = [
    'register_all_modules', 'collect_env', 'safe_load_checkpoint',
    'register_safe_checkpoint_loader', 'UnsafeCheckpointError'
]
