# Copyright (c) mmvireid contributors. All rights reserved.
"""``kill -9`` a real ``tools/train.py`` at several points, ``--resume``:
the continued run equals the uninterrupted one.

The toy CLIP-VIReID recipe as users run it (random augmentation, SupCon,
triplet, Adam, per-epoch checkpoints kept by ``max_keep_ckpts=1``, SYSU
evaluation at the end) on a 12-identity toy set: 2 prompt epochs of 3
iterations on cached features, then 2 fine-tuning epochs of 7 iterations.
One run is killed with SIGKILL and resumed with ``--resume`` again and again:

1. mid-stage: after iteration 5 (the 2nd of epoch 2, prompt stage);
2. at the last iteration of the prompt stage (6), before its checkpoint;
3. at the first iteration of the fine-tuning stage (7);
4. while ``epoch_3.pth`` is being saved: its data written to the temporary
   file, not yet renamed into place;

then it runs to the end. An uninterrupted run trains alongside. After each
kill the latest checkpoint must be complete; every resumed iteration's
losses, the final weights and the final metrics must equal the
uninterrupted run's. :mod:`train_probe` (``tests/test_distributed``) records
the losses and pauses the process at the kill point, so the kill lands
exactly there. On CPU with one thread per process and per-epoch reseeding,
"equal" means bit for bit.
"""
import glob
import os.path as osp
import signal
import sys

import pytest
import torch

from mmvireid.utils.fileio import TMP_SUFFIX
from mmvireid.utils import safe_load_checkpoint

# the launch helpers and the probe live with the distributed tests
sys.path.insert(
    0,
    osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_distributed'))
import launch_utils as lu  # noqa: E402

PROMPT_ITERS = 3  # ceil(164 cached features / 64)
FINETUNE_ITERS = 7  # sampler steps: 104 // (4 ids x 4 images) + 1

# The tiny ViT CLIP with the toy recipe's losses, augmentation and Adam,
# from the base files (the leaf toy config may change backbone or schedule).
CONFIG = '''
_base_ = [
    '{repo}/configs/_base_/models/clip_vireid_tiny_vit.py',
    '{repo}/configs/_base_/datasets/toy_sysu.py',
    '{repo}/configs/_base_/schedules/clip_vireid_2stage.py',
    '{repo}/configs/_base_/default_runtime.py',
]
custom_imports = dict(imports=['train_probe'], allow_failed_imports=False)
data_root = '{data_root}'
model = dict(num_classes=8)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
# 4 test identities: galleries of 12 to 15 images
val_evaluator = dict(max_rank=10)
train_cfg = dict(stages=[
    dict(name='prompt', epochs=2, validate=False,
         feature_cache={{{{_base_.feature_cache}}}}),
    dict(name='finetune', epochs=2)], val_interval=2)
optim_wrapper = dict(
    prompt=dict(optimizer=dict(lr=3e-3)),
    finetune=dict(optimizer=dict(lr=1e-3)))
param_scheduler = dict(
    prompt=[dict(type='TimmCosineLR', t_initial=2, lr_min=1e-5, warmup_t=1,
                 warmup_lr_init=3e-4, t_offset=1)],
    finetune=[dict(type='LinearLR', start_factor=0.1, by_epoch=True,
                   begin=0, end=2)])
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=1))
custom_hooks = [
    dict(type='StageSwitchHook'), dict(type='SyncBuffersHook'),
    dict(type='TrainProbeHook')]
randomness = dict(seed=7, deterministic=True)
log_level = 'WARNING'
'''

#: (kill point, probe environment, epoch of the checkpoint it resumes from)
KILLS = [
    ('mid-stage', dict(PROBE_PAUSE_AT_ITER='5'), 1),
    ('last iteration of a stage', dict(PROBE_PAUSE_AT_ITER='6'), 1),
    ('first iteration of the next stage', dict(PROBE_PAUSE_AT_ITER='7'), 2),
    ('while saving epoch_3.pth', dict(PROBE_PAUSE_IN_SAVE='epoch_3.pth'), 2),
]


def _snapshot(work_dir: str) -> dict:
    """What a user finds after the kill: last_checkpoint's target and
    whether every checkpoint file loads."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        latest = f.read().strip()
    files = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*.pth'))):
        try:
            files[osp.basename(path)] = safe_load_checkpoint(path)['meta']
        except Exception as e:  # recorded, asserted by the tests
            files[osp.basename(path)] = e
    return dict(
        latest=latest,
        files=files,
        temp=sorted(
            osp.basename(p)
            for p in glob.glob(osp.join(work_dir, f'.*{TMP_SUFFIX}'))))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('kill_resume')
    data_root = lu.make_toy_data(str(root / 'toy'))
    cfg = lu.write_config(
        str(root / 'toy.py'),
        CONFIG.format(repo=lu.REPO_ROOT, data_root=data_root))
    ref_probe = str(root / 'probe_ref')
    ref_log = str(root / 'ref.log')
    reference = lu.start(
        lu.train_cmd(cfg, str(root / 'work_ref')), lu.child_env(ref_probe),
        ref_log)

    work_dir = str(root / 'work')
    segments, snapshots, codes = [], [], []
    for i, (_, pause, _) in enumerate(KILLS):
        probe = str(root / f'probe_{i}')
        args = ['--resume'] if i else []
        codes.append(
            lu.run_until_paused(
                lu.train_cmd(cfg, work_dir,
                             *args), lu.child_env(probe, **pause), probe,
                str(root / f'run_{i}.log')))
        segments.append(lu.read_jsonl(osp.join(probe, 'losses_rank0.jsonl')))
        snapshots.append(_snapshot(work_dir))
    probe = str(root / f'probe_{len(KILLS)}')
    log = str(root / 'run_last.log')
    lu.wait_ok(
        lu.start(
            lu.train_cmd(cfg, work_dir, '--resume'), lu.child_env(probe), log),
        log)
    segments.append(lu.read_jsonl(osp.join(probe, 'losses_rank0.jsonl')))
    lu.wait_ok(reference, ref_log)
    return dict(
        work_dir=work_dir,
        ref_work_dir=str(root / 'work_ref'),
        reference=lu.read_jsonl(osp.join(ref_probe, 'losses_rank0.jsonl')),
        ref_metrics=lu.read_jsonl(osp.join(ref_probe, 'metrics_rank0.jsonl')),
        metrics=lu.read_jsonl(osp.join(probe, 'metrics_rank0.jsonl')),
        segments=segments,
        snapshots=snapshots,
        codes=codes,
        final_snapshot=_snapshot(work_dir))


def test_reference_schedule(runs):
    """The kill points are where the module docstring says."""
    ref = runs['reference']
    stages = [(r['epoch'], r['stage']) for r in ref]
    assert stages == ([(0, 'prompt')] * PROMPT_ITERS +
                      [(1, 'prompt')] * PROMPT_ITERS +
                      [(2, 'finetune')] * FINETUNE_ITERS +
                      [(3, 'finetune')] * FINETUNE_ITERS)
    assert [r['iter'] for r in ref] == list(range(len(ref)))


def test_runs_were_killed_at_the_kill_points(runs):
    assert runs['codes'] == [-signal.SIGKILL] * len(KILLS)
    last_iters = [seg[-1]['iter'] + 1 for seg in runs['segments'][:3]]
    assert last_iters == [5, 6, 7]
    # the save kill came after the last iteration of epoch 3
    assert runs['segments'][3][-1]['iter'] + 1 == 2 * PROMPT_ITERS + \
        FINETUNE_ITERS


@pytest.mark.parametrize('kill', range(len(KILLS)), ids=[k[0] for k in KILLS])
def test_kill_leaves_a_complete_latest_checkpoint(runs, kill):
    snap = runs['snapshots'][kill]
    epoch = KILLS[kill][2]
    assert snap['latest'] == osp.join(runs['work_dir'], f'epoch_{epoch}.pth')
    # every checkpoint on disk loads; max_keep_ckpts=1 keeps only the
    # latest, which the kill during saving must not have deleted yet
    assert list(snap['files']) == [f'epoch_{epoch}.pth']
    assert snap['files'][f'epoch_{epoch}.pth']['epoch'] == epoch
    if 'saving' in KILLS[kill][0]:
        # the new checkpoint exists only as the temporary file
        assert len(snap['temp']) == 1
        assert snap['temp'][0].startswith('.epoch_3.pth.')
    else:
        assert snap['temp'] == []


def test_resumed_runs_repeat_the_uninterrupted_losses(runs):
    ref = {r['iter']: r for r in runs['reference']}
    for i, seg in enumerate(runs['segments']):
        assert seg, f'segment {i} recorded nothing'
        if i:
            # resumed at the first iteration after its checkpoint
            epoch = KILLS[i - 1][2]
            first = sum(PROMPT_ITERS if e < 2 else FINETUNE_ITERS
                        for e in range(epoch))
            assert (seg[0]['epoch'], seg[0]['iter']) == (epoch, first)
        for rec in seg:
            want = ref[rec['iter']]
            assert (rec['epoch'], rec['stage']) == (want['epoch'],
                                                    want['stage'])
            # bit for bit: same code, one thread, reseeded every epoch
            assert rec['losses'] == want['losses'], (i, rec['iter'])
    assert runs['segments'][-1][-1]['iter'] == runs['reference'][-1]['iter']


def test_final_metrics_and_weights_equal_the_uninterrupted_run(runs):
    assert len(runs['metrics']) == len(runs['ref_metrics']) == 1
    got, want = runs['metrics'][0], runs['ref_metrics'][0]
    assert got['epoch'] == want['epoch'] == 4
    assert 'reid/Rank-1' in got['metrics']
    assert got['metrics'] == want['metrics']
    final = safe_load_checkpoint(osp.join(runs['work_dir'], 'epoch_4.pth'))
    ref = safe_load_checkpoint(osp.join(runs['ref_work_dir'], 'epoch_4.pth'))
    assert final['state_dict'].keys() == ref['state_dict'].keys()
    differ = [
        k for k, v in ref['state_dict'].items()
        if not torch.equal(final['state_dict'][k], v)
    ]
    assert not differ, differ[:10]


def test_resume_removed_the_partial_checkpoint(runs):
    snap = runs['final_snapshot']
    assert snap['temp'] == []
    assert snap['latest'].endswith('.pth')
    assert all(isinstance(meta, dict) for meta in snap['files'].values())
