# Copyright (c) mmvireid contributors. All rights reserved.
"""Pipeline wrappers."""
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmcv.transforms import BaseTransform, Compose

from mmvireid.registry import TRANSFORMS

__all__ = ['ModalityDispatch']

Transform = Union[dict, Callable[[dict], Optional[dict]]]


@TRANSFORMS.register_module()
class ModalityDispatch(BaseTransform):
    """Run the sub-pipeline of the sample's modality.

    VI-ReID trains visible and infrared images with different augmentations
    (e.g. CSDN adds ``ChannelAdapGray`` to infrared images only) while one
    dataset lists both. This wrapper reads ``results['modality']`` and runs the
    matching sub-pipeline.

    **Required Keys:** ``modality`` and whatever the chosen sub-pipeline
    needs.

    Args:
        **pipelines (list[dict | callable] | dict | callable | None): One
            sub-pipeline per modality name, each a list of transform configs
            (built with ``mmvireid.registry.TRANSFORMS``, which also finds
            MMCV's and, with a scope prefix such as ``'mmpretrain.'``, other
            libraries' transforms) or transform objects. ``None`` or ``[]``
            passes the sample through unchanged.

    Example:
        >>> dispatch = ModalityDispatch(
        ...     vis=[dict(type='ChannelRandomErasing', prob=0.5)],
        ...     ir=[dict(type='ChannelRandomErasing', prob=0.5),
        ...         dict(type='ChannelAdapGray', prob=0.5)])
    """

    def __init__(
            self, **pipelines: Union[Transform, Sequence[Transform],
                                     None]) -> None:
        if not pipelines:
            raise ValueError('ModalityDispatch needs at least one modality '
                             'pipeline, e.g. ModalityDispatch(vis=[...], '
                             'ir=[...]).')
        self.pipelines: Dict[str, Compose] = {
            modality: Compose(self._build(modality, pipeline))
            for modality, pipeline in pipelines.items()
        }

    @staticmethod
    def _build(
        modality: str, pipeline: Union[Transform, Sequence[Transform],
                                       None]) -> List[Callable]:
        if pipeline is None:
            return []
        if isinstance(pipeline, dict) or callable(pipeline):
            pipeline = [pipeline]
        transforms = []
        for transform in pipeline:
            if isinstance(transform, dict):
                transform = TRANSFORMS.build(transform)
            elif not callable(transform):
                raise TypeError(
                    f'ModalityDispatch: the {modality!r} pipeline must hold '
                    'transform configs (dict) or callables, got '
                    f'{type(transform).__name__}.')
            transforms.append(transform)
        return transforms

    def transform(self, results: dict) -> Optional[dict]:
        """Apply the sub-pipeline chosen by ``results['modality']``."""
        if 'modality' not in results:
            raise KeyError(
                'ModalityDispatch needs results["modality"] to choose a '
                f'pipeline among {sorted(self.pipelines)}, but the sample '
                f'has only the keys {sorted(results)}.')
        modality = results['modality']
        if modality not in self.pipelines:
            raise KeyError(
                f'ModalityDispatch has no pipeline for modality {modality!r}'
                f' (sample {results.get("img_path", "?")}); available: '
                f'{sorted(self.pipelines)}.')
        return self.pipelines[modality](results)

    def __repr__(self) -> str:
        inner = ', '.join(f'{modality}={pipeline!r}'
                          for modality, pipeline in self.pipelines.items())
        return f'{self.__class__.__name__}({inner})'
