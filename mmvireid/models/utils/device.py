# Copyright (c) mmvireid contributors. All rights reserved.
"""Host/device helpers that keep a training step free of device syncs.

Reading a value of a device tensor on the host (``bool(t.any())``,
``t.item()``, ``t.tolist()``, ``int(t)``) or running an op whose output
*shape* depends on its values (``torch.unique``, ``torch.nonzero``,
boolean-mask indexing, ``torch.bincount``) makes the host wait until the GPU
has run every kernel queued before it: the host stops queueing work, and the
GPU idles while the host catches up. A blocking host-to-device copy
(``torch.tensor(list, device='cuda')``, ``t.to('cuda')``) waits the same way.

The design, used by every model and loss of :mod:`mmvireid.models`:

* **Batch metadata stays on the host.** :class:`VIReIDDataPreprocessor`
  moves only the inputs to the device; identity labels, modality and camera
  ids (in the data samples) stay CPU tensors. The models read them there
  and hand *host* label / modality / camera tensors to the image encoder
  and the losses.
* **Index structures are computed on the host.** Which samples are
  infrared, which identities have both modalities, the (identity, modality)
  groups of a batch: all of it depends only on the metadata, so it is
  computed on the host copy (free) and the resulting index tensors go to
  the device with :func:`to_device` (a pinned, ``non_blocking`` copy: the
  host never waits for it). The device then runs exactly the kernels it ran
  before, so the numbers are bit-identical.
* **Value checks run where they are free.** A check on tensor values (a
  label out of range, an unknown modality, an identity without a positive)
  runs only when :func:`checks_enabled` says so: when every tensor it reads
  is on the host, which is always the case for the metadata the models
  pass. The losses also accept device tensors (their public API); the
  checks are then skipped, unless device checks are switched on for
  debugging with the environment variable ``MMVIREID_DEVICE_CHECKS=1`` or
  :func:`set_device_checks` (each check then costs one sync).

Code that keeps to this design calls none of ``Tensor.item / tolist /
__bool__ / __int__ / __float__ / __index__`` on a device tensor during
``train_step``; ``tests/test_models/test_no_host_sync.py`` asserts it for
every stage of every model.
"""
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from torch import Tensor

__all__ = [
    'checks_enabled', 'device_checks', 'device_checks_enabled',
    'is_host_tensor', 'set_device_checks', 'to_device'
]

#: Environment variable that switches the value checks on for device
#: tensors too (``1``, ``true``, ``yes``, ``on``).
DEVICE_CHECKS_ENV = 'MMVIREID_DEVICE_CHECKS'

_device_checks: Optional[bool] = None  # None: read the environment


def device_checks_enabled() -> bool:
    """Whether value checks also run on device tensors (debug switch)."""
    if _device_checks is not None:
        return _device_checks
    return os.environ.get(DEVICE_CHECKS_ENV, '').strip().lower() in (
        '1', 'true', 'yes', 'on')


def set_device_checks(enabled: Optional[bool]) -> None:
    """Switch the value checks on device tensors on or off.

    Args:
        enabled (bool, optional): True runs every value check whatever the
            device (one sync per check), False only those on host tensors;
            None falls back to ``MMVIREID_DEVICE_CHECKS``.
    """
    global _device_checks
    _device_checks = None if enabled is None else bool(enabled)


@contextmanager
def device_checks(enabled: bool = True) -> Iterator[None]:
    """Context manager form of :func:`set_device_checks`."""
    global _device_checks
    saved = _device_checks
    set_device_checks(enabled)
    try:
        yield
    finally:
        _device_checks = saved


def is_host_tensor(tensor: Tensor) -> bool:
    """Whether reading ``tensor``'s values costs no device sync (it lives in
    host memory)."""
    return tensor.device.type == 'cpu'


def checks_enabled(*tensors: Optional[Tensor]) -> bool:
    """Whether a value check reading ``tensors`` should run.

    True when every given tensor is on the host (reading it is free) or
    when device checks are switched on (:func:`set_device_checks`,
    ``MMVIREID_DEVICE_CHECKS=1``). ``None`` entries are ignored.
    """
    if device_checks_enabled():
        return True
    # Looked up at call time, so a test may redefine what "host" means.
    return all(is_host_tensor(t) for t in tensors if t is not None)


def to_device(tensor: Tensor, device: Union[str, torch.device]) -> Tensor:
    """Copy ``tensor`` to ``device`` without making the host wait.

    A host tensor bound for a CUDA device is staged in pinned memory (from
    PyTorch's caching host allocator, which keeps the block until the copy
    has run) and copied with ``non_blocking=True``: the host queues the copy
    and moves on. A blocking copy from pageable memory would first wait for
    every kernel already queued on the stream. Any other move is an
    ordinary ``tensor.to(device)`` (a no-op on the same device).

    Args:
        tensor (Tensor): Typically a small index or label tensor built on
            the host.
        device (str | torch.device): The target device.

    Returns:
        Tensor: ``tensor`` on ``device`` (the same object if already there).
    """
    device = torch.device(device)
    if device.type == 'cuda' and tensor.device.type == 'cpu':
        if not tensor.is_pinned():
            tensor = tensor.pin_memory()
        return tensor.to(device, non_blocking=True)
    return tensor.to(device)
