# Copyright (c) mmvireid contributors. All rights reserved.
"""Atomic checkpoint files, save-before-delete, and the shape check on
load (``mmvireid.engine.hooks.checkpoint_hook``).

The end-to-end check (a real ``tools/train.py`` killed with SIGKILL while
saving) is ``tests/test_integration/test_kill_resume.py``; these tests
inject the failure in-process at the exact step.
"""
import os
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmvireid.engine.hooks import AtomicCheckpointHook, CheckpointShapeError
from mmvireid.utils import fileio as ckpt_mod
from mmvireid.utils import register_all_modules, safe_load_checkpoint
from mmvireid.utils.fileio import atomic_write, remove_stale_temp_files

register_all_modules()


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even except clauses
    that catch Exception."""


def _listing(folder):
    return sorted(os.listdir(folder))


# ------------------------------------------------------------ atomic_write
def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    with open(path, 'wb') as f:
        f.write(b'old content')
    atomic_write(path, b'new')
    assert open(path, 'rb').read() == b'new'
    atomic_write(path, 'text é')
    assert open(path, encoding='utf-8').read() == 'text é'
    assert _listing(tmp_path) == ['epoch_1.pth']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_kill_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write(path, 'epoch_1.pth')

    def killed(src, dst):
        raise _Killed

    monkeypatch.setattr(ckpt_mod.os, 'replace', killed)
    with pytest.raises(_Killed):
        atomic_write(path, 'epoch_2.pth')
    assert open(path).read() == 'epoch_1.pth'
    # the unwinding removed its temporary file
    assert _listing(tmp_path) == ['last_checkpoint']


def test_failure_in_the_middle_of_writing_keeps_the_old_file(
        tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_write(path, b'complete checkpoint')
    real_fdopen = os.fdopen

    class HalfWriter:

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise OSError(28, 'No space left on device')

    monkeypatch.setattr(ckpt_mod.os, 'fdopen',
                        lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match='No space left'):
        atomic_write(path, b'x' * 1000)
    assert open(path, 'rb').read() == b'complete checkpoint'
    assert _listing(tmp_path) == ['epoch_1.pth']


def test_remove_stale_temp_files_only_removes_ours(tmp_path):
    names = [
        '.epoch_3.pth.0123456789ab.mmvireid-tmp',  # ours
        '.last_checkpoint.ba9876543210.mmvireid-tmp',  # ours
        'epoch_2.pth',
        '.hidden',
        'notes.mmvireid-tmp',
        '.x.tmp'
    ]
    for name in names:
        (tmp_path / name).write_text('x')
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(osp.basename(p) for p in removed) == sorted(names[:2])
    assert _listing(tmp_path) == sorted(names[2:])
    assert remove_stale_temp_files(str(tmp_path / 'absent')) == []


# ------------------------------------------------------ the hook in a Runner
class _ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.fc(inputs).sum()
        return dict(loss=out * out) if mode == 'loss' else out


def _runner(work_dir, hook_type, max_epochs=3):
    data = [dict(inputs=torch.tensor([float(i), 1.0])) for i in range(4)]
    return Runner(
        model=_ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type=hook_type, interval=1, max_keep_ckpts=1),
            logger=None),
        default_scope='mmvireid',
        log_level='WARNING',
        # Runners built within one second would share MMEngine instances
        experiment_name=f'atomic_ckpt_{uuid.uuid4().hex}')


def test_hook_keeps_one_complete_checkpoint(tmp_path):
    runner = _runner(str(tmp_path), 'AtomicCheckpointHook')
    hook = [h for h in runner.hooks if isinstance(h, AtomicCheckpointHook)]
    assert len(hook) == 1 and hook[0].backend_args == dict(
        backend='atomic_local')
    runner.train()
    pth = [n for n in _listing(tmp_path) if n.endswith('.pth')]
    assert pth == ['epoch_3.pth']
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path /
                                                            'epoch_3.pth')
    assert safe_load_checkpoint(str(tmp_path /
                                    'epoch_3.pth'))['meta']['epoch'] == 3


def _kill_while_saving_epoch_2(monkeypatch, target):
    """Raise _Killed when epoch_2.pth is about to become visible."""
    if target == 'atomic':
        real = ckpt_mod.os.replace

        def replace(src, dst):
            if osp.basename(dst) == 'epoch_2.pth':
                raise _Killed
            return real(src, dst)

        monkeypatch.setattr(ckpt_mod.os, 'replace', replace)
    else:  # MMEngine's LocalBackend writes in place
        real_put = LocalBackend.put

        def put(self, obj, filepath):
            if osp.basename(str(filepath)) == 'epoch_2.pth':
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise _Killed
            return real_put(self, obj, filepath)

        monkeypatch.setattr(LocalBackend, 'put', put)


def test_kill_while_saving_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch):
    _kill_while_saving_epoch_2(monkeypatch, 'atomic')
    with pytest.raises(_Killed):
        _runner(str(tmp_path), 'AtomicCheckpointHook').train()
    latest = open(tmp_path / 'last_checkpoint').read()
    assert latest == str(tmp_path / 'epoch_1.pth')
    assert safe_load_checkpoint(latest)['meta']['epoch'] == 1
    assert not osp.exists(tmp_path / 'epoch_2.pth')


def test_mmengine_hook_loses_every_checkpoint_in_the_same_kill(
        tmp_path, monkeypatch):
    """Why the hook exists: with max_keep_ckpts=1, MMEngine 0.10.7 deletes
    epoch_1.pth before writing epoch_2.pth in place."""
    _kill_while_saving_epoch_2(monkeypatch, 'mmengine')
    with pytest.raises(_Killed):
        _runner(str(tmp_path), 'CheckpointHook').train()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path /
                                                            'epoch_1.pth')
    assert not osp.exists(tmp_path / 'epoch_1.pth')
    with pytest.raises(RuntimeError, match='is corrupt or truncated'):
        safe_load_checkpoint(str(tmp_path / 'epoch_2.pth'))


def test_stale_temp_files_are_removed_when_training_starts(tmp_path):
    stale = tmp_path / '.epoch_2.pth.0123456789ab.mmvireid-tmp'
    stale.write_bytes(b'half a checkpoint')
    _runner(str(tmp_path), 'AtomicCheckpointHook', max_epochs=1).train()
    assert not stale.exists()


def test_explicit_backend_args_keep_their_backend():
    hook = AtomicCheckpointHook(interval=1, backend_args=dict(backend='local'))
    assert hook.backend_args == dict(backend='local')
    assert CheckpointHook in type(hook).__mro__


# ------------------------------------------------------------ shape check
def _fake_runner(model, resume, load_from='ckpt.pth'):
    return SimpleNamespace(
        model=model, _resume=resume, _load_from=load_from, work_dir='.')


def _head(num_classes):
    model = nn.Module()
    model.backbone = nn.Linear(4, 3)
    model.classifier = nn.Linear(3, num_classes)
    return model


def test_shape_check_names_every_mismatched_key():
    ckpt = dict(state_dict={
        f'module.{k}': v
        for k, v in _head(5).state_dict().items()
    })
    hook = AtomicCheckpointHook(interval=1)
    with pytest.raises(CheckpointShapeError) as exc:
        hook.after_load_checkpoint(_fake_runner(_head(7), True), ckpt)
    assert str(exc.value) == (
        'Checkpoint "ckpt.pth" does not fit the model: 2 tensor(s) have '
        'another shape:\n'
        '  classifier.weight: checkpoint (5, 3), model (7, 3)\n'
        '  classifier.bias: checkpoint (5,), model (7,)\n'
        'Resume with the config this checkpoint was trained with (same '
        'model, e.g. num_classes and backbone).')
    # a matching checkpoint passes
    hook.after_load_checkpoint(
        _fake_runner(_head(5), True), dict(state_dict=_head(5).state_dict()))


def test_strict_shapes_false_only_relaxes_load_from():
    ckpt = dict(state_dict=_head(5).state_dict())
    hook = AtomicCheckpointHook(interval=1, strict_shapes=False)
    hook.after_load_checkpoint(_fake_runner(_head(7), False), ckpt)
    with pytest.raises(CheckpointShapeError, match='classifier.weight'):
        hook.after_load_checkpoint(_fake_runner(_head(7), True), ckpt)
    strict = AtomicCheckpointHook(interval=1)
    with pytest.raises(
            CheckpointShapeError, match='strict_shapes=False to load'):
        strict.after_load_checkpoint(_fake_runner(_head(7), False), ckpt)


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    from mmvireid.utils import fileio as module
    from mmvireid.utils.fileio import DiskFullError
    from mmvireid.utils.tool_utils import explain_error
    path = tmp_path / 'epoch_3.pth'
    path.write_bytes(b'previous')
    real_fdopen = module.os.fdopen

    class _Full:

        def __init__(self, fd):
            self.f = real_fdopen(fd, 'wb')

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(module.os, 'fdopen', lambda fd, mode: _Full(fd))
    with pytest.raises(DiskFullError) as exc:
        atomic_write(str(path), b'new checkpoint')
    assert str(exc.value) == (
        f'No space left on device while writing "{path}" (14 bytes): free '
        'space on that disk or move work_dir elsewhere. The previous version '
        'of the file, if any, is unchanged')
    assert explain_error(exc.value) == str(exc.value)
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['epoch_3.pth']  # no temporary left
