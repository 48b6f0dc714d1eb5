# Copyright (c) mmvireid contributors. All rights reserved.
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from mmvireid.utils import UnsafeCheckpointError, safe_load_checkpoint


def _resume_like_checkpoint():
    hub = MessageHub.get_instance('test_checkpoint_hub')
    for i in range(3):
        hub.update_scalar('train/loss', float(i) * 0.5)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('epoch_arr', np.arange(3))
    return dict(
        meta=dict(epoch=2, iter=10, seed=np.int64(3)),
        state_dict=dict(w=torch.ones(2)),
        message_hub=hub.state_dict())


def test_resume_checkpoint_round_trip(tmp_path):
    path = str(tmp_path / 'epoch_2.pth')
    torch.save(_resume_like_checkpoint(), path)
    ckpt = safe_load_checkpoint(path)
    assert ckpt['meta']['epoch'] == 2
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.current() == 1.0
    # mmengine's own entry point goes through our loader as well
    ckpt2 = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt2['meta']['epoch'] == 2


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_code_executing_pickle_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Evil()}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'Refusing to load checkpoint .*evil\.pth'):
        safe_load_checkpoint(path)


class _GetattrEscape:
    """First step of a ``getattr(<allowed>, '__init__').__globals__`` escape."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_restricted(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': _GetattrEscape()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_load_checkpoint(path)


def test_truncated_checkpoint_names_the_file(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save(_resume_like_checkpoint(), good)
    bad = str(tmp_path / 'truncated.pth')
    with open(good, 'rb') as f, open(bad, 'wb') as g:
        g.write(f.read()[:100])
    with pytest.raises(RuntimeError, match=r'truncated\.pth is corrupt'):
        safe_load_checkpoint(bad)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        safe_load_checkpoint(str(tmp_path / 'nothing.pth'))


def test_local_loader_log_names_the_local_backend(tmp_path, capsys):
    """mmengine logs "Loads checkpoint by <loader name[10:]> backend"; the
    safe loader is named so that it says "local" (it said "der")."""
    from mmengine.logging import MMLogger
    path = str(tmp_path / 'w.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1))), path)
    loader = CheckpointLoader._get_checkpoint_loader(path)
    assert loader.__module__ == 'mmvireid.utils.checkpoint'
    assert loader.__name__[10:] == 'local'
    MMLogger.get_instance('test_local_loader_log')
    CheckpointLoader.load_checkpoint(path, logger='test_local_loader_log')
    out = capsys.readouterr()
    assert 'Loads checkpoint by local backend from path' in out.out + out.err
