# Copyright (c) mmvireid contributors. All rights reserved.
"""Checkpoints that survive a kill at any moment, and loads that check shapes.

Why: a cluster job can be killed (``kill -9``, pre-emption, OOM killer) at any
instant, including while a checkpoint is being written. mmengine 0.10.7 writes
``epoch_N.pth`` and ``last_checkpoint`` in place, so such a kill leaves a
truncated file under the final name, and it deletes the checkpoint dropped by
``max_keep_ckpts`` *before* writing the new one, so with
``max_keep_ckpts=1`` a kill during saving left no valid checkpoint at all.
"""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint

from mmvireid.registry import HOOKS
from mmvireid.utils.checkpoint import (CheckpointMismatchError,
                                       describe_mismatch, mismatched_shapes)
from mmvireid.utils.errors import UserInputError
from mmvireid.utils.fileio import atomic_write, remove_stale_temp_files

__all__ = ['AtomicCheckpointHook', 'CheckpointShapeError']


class CheckpointShapeError(UserInputError):
    """A checkpoint holds tensors whose shapes differ from the model's."""


def _is_local(path: Optional[str]) -> bool:
    return path is None or '://' not in str(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` whose files survive a kill.

    Same arguments and file names as mmengine's hook, with three changes:

    1. **Atomic files.** Checkpoints (periodic and best) and
       ``last_checkpoint`` are written to a temporary file and renamed into
       place (:func:`atomic_write`), so ``epoch_N.pth`` and the file
       ``last_checkpoint`` points to are always complete. Used when the
       checkpoints go to a local folder and no ``backend_args`` /
       ``file_client_args`` are given; other storage keeps its backend.
    2. **Safe order.** A new checkpoint is written and ``last_checkpoint``
       moved to it *before* the checkpoint dropped by ``max_keep_ckpts`` is
       deleted (mmengine deletes first). Temporary files a killed run left
       behind are removed when training starts.
    3. **Shape check on load.** Before a checkpoint reaches the model
       (``after_load_checkpoint``), tensors whose shape differs from the
       model's are listed by key with both shapes and loading stops with a
       :class:`CheckpointShapeError` — always when resuming (training cannot
       continue a different model), and with ``load_from`` unless
       ``strict_shapes=False``, in which case mmengine's warning names them
       and those weights keep their initialisation (e.g. a classifier of
       another ``num_classes`` when fine-tuning on another dataset).

    Args:
        strict_shapes (bool): Refuse mismatched shapes with ``load_from`` too.
            Defaults to True.
        **kwargs: :class:`mmengine.hooks.CheckpointHook` arguments
            (``interval``, ``max_keep_ckpts``, ``save_best``, ...).
    """

    def __init__(self, *args, strict_shapes: bool = True, **kwargs) -> None:
        self._atomic = (
            kwargs.get('backend_args') is None
            and kwargs.get('file_client_args') is None)
        if self._atomic:
            kwargs['backend_args'] = dict(backend='atomic_local')
        super().__init__(*args, **kwargs)
        self.strict_shapes = strict_shapes

    # ------------------------------------------------------------- saving
    def before_train(self, runner) -> None:
        out_dir = runner.work_dir if self.out_dir is None else self.out_dir
        if self._atomic and not _is_local(out_dir):
            # e.g. out_dir='s3://...': leave the choice of backend to mmengine
            self._atomic = False
            self.backend_args = None
        super().before_train(runner)
        if self._atomic and is_main_process():
            for path in remove_stale_temp_files(self.out_dir):
                print_log(
                    f'Removed {path}, a partial checkpoint of a run killed '
                    'while saving',
                    logger='current')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # Same bookkeeping as mmengine's, but the dropped checkpoint is only
        # deleted once the new one and last_checkpoint are in place.
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'), str(self.last_ckpt))
        if dropped is not None and dropped != step:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(dropped))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)

    # ------------------------------------------------------------- loading
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Stop before a checkpoint of another model shape is loaded."""
        resuming = bool(getattr(runner, '_resume', False))
        if not (resuming or self.strict_shapes):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if resuming:
            # A resume needs this very model: another method's checkpoint
            # would otherwise fail later with an optimizer "parameter
            # groups" traceback, or half-load.
            source = runner._load_from
            if source is None:
                source = find_latest_checkpoint(runner.work_dir)
            saved = {
                k[len('module.'):] if k.startswith('module.') else k
                for k in checkpoint.get('state_dict', checkpoint)
            }
            problem = None if saved == set(model.state_dict()) else \
                describe_mismatch(str(source), checkpoint, model)
            if problem:
                raise CheckpointMismatchError(
                    problem + '\nResume with the config this checkpoint '
                    'was trained with, or start a new work directory.')
        mismatched = mismatched_shapes(
            checkpoint.get('state_dict', checkpoint), model.state_dict())
        if not mismatched:
            return
        source = runner._load_from
        if source is None and resuming:
            source = find_latest_checkpoint(runner.work_dir)
        lines = '\n'.join(f'  {key}: checkpoint {tuple(ckpt)}, model '
                          f'{tuple(own)}' for key, ckpt, own in mismatched)
        if resuming:
            fix = ('Resume with the config this checkpoint was trained '
                   'with (same model, e.g. num_classes and backbone).')
        else:
            fix = ('Use the config the checkpoint was trained with, or set '
                   'default_hooks.checkpoint.strict_shapes=False to load '
                   'the other weights and keep these initialised (e.g. a '
                   'classifier for another number of identities).')
        raise CheckpointShapeError(
            f'Checkpoint "{source}" does not fit the model: '
            f'{len(mismatched)} tensor(s) have another shape:\n{lines}\n'
            f'{fix}')
