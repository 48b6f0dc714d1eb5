# Copyright (c) mmvireid contributors. All rights reserved.
"""mmvireid: CLIP-based visible-infrared person re-identification on MMEngine."""
import warnings

import mmengine
from mmengine.utils import digit_version

from .version import __version__, version_info

try:
    import mmcv
except ImportError as e:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        'mmvireid needs mmcv-lite (or mmcv) >= 2.0.0, < 2.4.0; install it with '
        '`pip install "mmcv-lite>=2.0.0,<2.4.0"` (the full mmcv needs a CUDA '
        'compile and is not required).') from e

# mmvireid needs no compiled mmcv op, so mmcv-lite is the expected install;
# its warning about the missing deformable-attention op is noise here.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

# Same style as mmpretrain: fail early with a message naming the range.
mmcv_minimum_version = '2.0.0'
mmcv_maximum_version = '2.4.0'
mmcv_version = digit_version(mmcv.__version__)

mmengine_minimum_version = '0.8.3'
mmengine_maximum_version = '1.0.0'
mmengine_version = digit_version(mmengine.__version__)

assert (digit_version(mmcv_minimum_version) <= mmcv_version
        < digit_version(mmcv_maximum_version)), (
    f'MMCV=={mmcv.__version__} is used but incompatible with mmvireid. '
    f'Please install mmcv-lite>={mmcv_minimum_version}, '
    f'<{mmcv_maximum_version}.')

assert (digit_version(mmengine_minimum_version) <= mmengine_version
        < digit_version(mmengine_maximum_version)), (
    f'MMEngine=={mmengine.__version__} is used but incompatible with '
    f'mmvireid. Please install mmengine>={mmengine_minimum_version}, '
    f'<{mmengine_maximum_version}.')

# ``mmvireid::`` config paths (``_base_`` files, mmengine.hub.get_config)
# resolve once mmvireid is imported; see config_scope.py.
from .config_scope import register_config_scope  # noqa: E402

register_config_scope()

__all__ = ['__version__', 'version_info']
