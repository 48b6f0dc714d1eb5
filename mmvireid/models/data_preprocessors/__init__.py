# Copyright (c) mmvireid contributors. All rights reserved.
from .vireid_data_preprocessor import (VIReIDDataPreprocessor, cam_tensor,
                                       modality_tensor)

__all__ = ['VIReIDDataPreprocessor', 'modality_tensor', 'cam_tensor']
