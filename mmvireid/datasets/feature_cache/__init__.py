# Copyright (c) mmvireid contributors. All rights reserved.
"""Feature caches of the prompt stages: extraction, dataset and batching.

A stage with ``feature_cache=dict(...)`` trains on image features computed
once, at the stage start, by the frozen image encoder.
:func:`build_feature_cache` extracts them (sharded across ranks and
gathered, so every rank holds the whole cache) and returns the stage's
dataloader over a :class:`FeatureCacheDataset`;
:class:`~mmvireid.engine.hooks.StageSwitchHook` decides when.

``feature_cache`` keys (checked by :func:`check_cache_cfg` for every stage
when :class:`~mmvireid.engine.runner.MultiStageTrainLoop` parses its plan,
and so by the tools' preflight):

* ``mode``: how the cache is drawn and batched (default ``'shuffled'``):

  - ``'shuffled'``: every train image once (dataset order); batches of
    ``batch_size`` features shuffled every epoch (CLIP-ReID stage 1).
  - ``'paired'``: the images of one epoch's draw of the image loader's
    :class:`CrossModalIdentitySampler` (drawn for the stage's first epoch,
    so a resumed run redraws the same), extracted one sampler step at a
    time; visible position ``j`` and infrared position ``j`` of a step share
    the identity and are cached as a pair. Each batch holds ``batch_size``
    pairs, shuffled every epoch: ``[B visible; B infrared]`` features,
    position-aligned (CSDN stage 1, see :class:`PairedCacheBatchSampler`).
  - ``'sampled'``: the same draw, its features shuffled one by one (CSDN
    stage 2, which caches the identity-sampled images of both modalities
    again).

* ``pipeline``: the extraction pipeline; defaults to the pipeline of
  ``val_dataloader.dataset`` (else ``test_dataloader.dataset``), the
  test-style transforms both references use.
* ``batch_size``: features per batch (pairs per batch in ``'paired'``
  mode); default 64.
* ``drop_last``: drop the last incomplete batch of every epoch (CSDN
  iterates ``len // batch_size`` batches); default False.
* ``extract_batch_size`` (``'shuffled'`` only; default 64): images per
  extraction batch. The other modes extract one sampler step (the image
  loader's batch) at a time, as CSDN does, which matters when the model
  extracts with BatchNorm on batch statistics.
* ``num_workers``: extraction loader workers, default 0.
* ``modalities`` (not in ``'paired'`` mode): keep only these, e.g.
  ``['vis']``; default both.
"""
from .builder import (CACHE_KEYS, CACHE_MODES, build_feature_cache,
                      cache_dataset_cfg, check_cache_cfg,
                      extract_batch_features)
from .cache_dataset import (FeatureCacheDataset, PairedCacheBatchSampler,
                            filter_modalities)

__all__ = [
    'FeatureCacheDataset', 'PairedCacheBatchSampler', 'filter_modalities',
    'CACHE_MODES', 'CACHE_KEYS', 'check_cache_cfg', 'cache_dataset_cfg',
    'extract_batch_features', 'build_feature_cache'
]
