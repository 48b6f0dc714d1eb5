# Copyright (c) mmvireid contributors. All rights reserved.
"""Image loading that names the file at fault."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio

from mmvireid.registry import TRANSFORMS

__all__ = ['LoadImageFromFile', 'CorruptImageError']


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded (truncated, corrupt, empty
    or not an image)."""


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` with errors that name the
    file.

    Registered in mmvireid's scope under mmcv's name, so every config's
    ``dict(type='LoadImageFromFile', ...)`` uses it (the way mmocr extends
    the same transform). Same arguments, outputs and ``ignore_empty``
    behaviour; only the failures change:

    * a missing file raises ``FileNotFoundError`` naming it;
    * a file that cannot be decoded raises :class:`CorruptImageError` naming
      it, with the decoder's reason. mmcv raises the decoder's own error
      (e.g. Pillow's ``image file is truncated``), which does not say which
      of thousands of images is broken, or asserts with a bare message.

    Truncation is detected by the ``'pillow'`` decoder (the configs' choice):
    OpenCV decodes a truncated JPEG into a partly grey image without an
    error.
    """

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            if self.file_client_args is not None:
                file_client = fileio.FileClient.infer_client(
                    self.file_client_args, filename)
                img_bytes = file_client.get(filename)
            else:
                img_bytes = fileio.get(
                    filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(
                f'Image file "{filename}" does not exist (listed by the '
                'dataset; check data_root and the split/index files).') from e
        reason = None
        img = None
        if not img_bytes:
            reason = 'the file is empty'
        else:
            try:
                img = mmcv.imfrombytes(
                    img_bytes,
                    flag=self.color_type,
                    backend=self.imdecode_backend)
            except Exception as e:  # the decoders raise many types
                reason = f'{type(e).__name__}: {e}'
            else:
                if img is None:
                    reason = f'the {self.imdecode_backend} decoder returned ' \
                        'no image'
        if reason is not None:
            if self.ignore_empty:
                return None
            raise CorruptImageError(
                f'Image file "{filename}" cannot be decoded ({reason}): it is '
                'corrupt, truncated or not an image. Replace it with a good '
                'copy (re-extract the dataset) or remove it from the split '
                'files.')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
