# Copyright (c) mmvireid contributors. All rights reserved.
from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import mmvireid


def collect_env() -> dict:
    """Collect the environment (torch, CUDA, mmengine, ...) plus mmvireid's
    own dependencies: mmcv, mmpretrain and open_clip versions."""
    env_info = collect_base_env()
    env_info['mmvireid'] = f'{mmvireid.__version__}+{get_git_hash()[:7]}'
    for name in ('mmcv', 'mmpretrain', 'open_clip'):
        try:
            module = __import__(name)
            env_info[name] = getattr(module, '__version__', 'unknown')
        except ImportError:
            env_info[name] = 'not installed'
    return env_info


if __name__ == '__main__':
    for k, v in collect_env().items():
        print(f'{k}: {v}')
