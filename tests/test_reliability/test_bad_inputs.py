# Copyright (c) mmvireid contributors. All rights reserved.
"""The bad-input catalogue, through ``tools/train.py`` as users meet it.

Each case runs the tool's ``main()`` in this process (the same code as the
command line, without paying for a new interpreter) and checks the exact
``ERROR:`` message, exit code 1, no traceback, and that nothing was written
(an error found before the Runner starts leaves no work directory) or
overwritten (checkpoints keep their bytes). The messages are listed with
their fixes in ``docs/en/advanced_guides/troubleshooting.md``.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from toy_utils import make_toy_dataset

from mmvireid.utils import register_all_modules

register_all_modules()

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_LAYOUT_HINT = 'The dataset is expected in this layout:'


def _load_train_tool():
    spec = importlib.util.spec_from_file_location(
        '_mmvireid_train_tool', osp.join(REPO_ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_TOOL = _load_train_tool()


@pytest.fixture(scope='module')
def pristine_toy(tmp_path_factory):
    """12 identities (train ids 1, 2, 4, 5, 6, 7, 8, 11), never modified."""
    return make_toy_dataset(
        'sysu', tmp_path_factory.mktemp('reliability') / 'toy', num_ids=12)


@pytest.fixture
def toy(pristine_toy, tmp_path):
    """A copy of the toy set this test may break."""
    root = str(tmp_path / 'toy')
    shutil.copytree(pristine_toy, root)
    return root


def write_config(tmp_path, data_root: str, extra: str = '') -> str:
    path = str(tmp_path / 'toy_cfg.py')
    with open(path, 'w') as f:
        f.write(f'''
_base_ = [
    '{REPO_ROOT}/configs/_base_/models/clip_vireid_tiny_vit.py',
    '{REPO_ROOT}/configs/_base_/datasets/toy_sysu.py',
    '{REPO_ROOT}/configs/_base_/schedules/clip_vireid_2stage.py',
    '{REPO_ROOT}/configs/_base_/default_runtime.py',
]
data_root = '{data_root}'
model = dict(num_classes=8)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(stages=[
    dict(name='prompt', epochs=1, validate=False,
         feature_cache={{{{_base_.feature_cache}}}}),
    dict(name='finetune', epochs=1)])
param_scheduler = dict(
    prompt=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    finetune=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
log_level = 'WARNING'
{extra}
''')
    return path


def run_train(monkeypatch, capsys, *argv):
    """``python tools/train.py *argv``; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *argv])
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(SystemExit) as exc:
        TRAIN_TOOL.main()
    err = capsys.readouterr().err
    return exc.value.code, err


def error_of(err: str) -> str:
    """The tool's message: everything from the ``ERROR:`` line on."""
    assert 'Traceback' not in err, err
    assert 'ERROR: ' in err, err
    return err[err.index('ERROR: '):].rstrip('\n')


# ------------------------------------------------------------------ datasets
def test_missing_dataset_root(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / 'no_such_dataset')
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, root),
                          '--work-dir', work_dir)
    assert code == 1
    msg = error_of(err)
    assert msg.startswith(
        f'ERROR: train_dataloader.dataset (SYSUMM01Dataset): '
        f'SYSUMM01Dataset: the data_root folder "{root}" does not exist. '
        f'{TOY_LAYOUT_HINT}\n<data_root>/\n')
    assert 'exp/' in msg and 'cam3/ cam6/' in msg
    assert not osp.exists(work_dir)


def test_dataset_root_without_split_files(toy, tmp_path, monkeypatch, capsys):
    shutil.rmtree(osp.join(toy, 'exp'))
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir)
    assert code == 1
    assert error_of(err).startswith(
        'ERROR: train_dataloader.dataset (SYSUMM01Dataset): SYSUMM01Dataset: '
        f'the identity list file "{toy}/exp/train_id.txt" does not exist. '
        f'{TOY_LAYOUT_HINT}')
    assert not osp.exists(work_dir)


def test_malformed_identity_list(toy, tmp_path, monkeypatch, capsys):
    with open(osp.join(toy, 'exp', 'train_id.txt'), 'w') as f:
        f.write('2,4,five,6\n')
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir)
    assert code == 1
    assert error_of(err) == (
        'ERROR: train_dataloader.dataset (SYSUMM01Dataset): The identity '
        f'list "{toy}/exp/train_id.txt" holds "five", which is not an '
        'integer person id.')
    assert not osp.exists(work_dir)


def test_index_file_referencing_absent_images(tmp_path, monkeypatch, capsys):
    """RegDB-style index files list image paths; two are not on disk."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dataset_converters'))
    try:
        from make_toy_vireid import make_toy_dataset
    finally:
        sys.path.pop(0)
    root = str(tmp_path / 'regdb')
    make_toy_dataset('regdb', root, num_ids=8, seed=0, verbose=False)
    index = osp.join(root, 'idx', 'train_thermal_1.txt')
    with open(index) as f:
        lines = f.read().splitlines()
    for line in lines[:2]:
        os.remove(osp.join(root, line.split(' ')[0]))
    cfg = str(tmp_path / 'regdb_cfg.py')
    with open(cfg, 'w') as f:
        f.write(f'''
_base_ = ['{REPO_ROOT}/configs/clip_vireid_regdb.py']
data_root = '{root}/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
''')
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, cfg, '--work-dir', work_dir)
    assert code == 1
    missing = '\n'.join(f'  {root}/{line.split(" ")[0]}' for line in lines[:2])
    msg = error_of(err)
    assert msg.startswith(
        f'ERROR: train_dataloader.dataset (RegDBDataset, data_root '
        f'"{root}/"): 2 of ')
    assert msg.endswith(
        f' images listed by its split/index files do not exist:\n{missing}\n'
        'Check that the dataset was extracted completely and that the split '
        'files belong to this copy.')
    assert not osp.exists(work_dir)


def test_identity_with_visible_images_only(toy, tmp_path, monkeypatch, capsys):
    for cam in ('cam3', 'cam6'):
        shutil.rmtree(osp.join(toy, cam, '0002'))
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir)
    assert code == 1
    assert error_of(err) == (
        'ERROR: train_dataloader.dataset (SYSUMM01Dataset): Person id 2 has '
        f'visible training images but no infrared one ({toy}/cam1..cam6); '
        'every training identity needs both modalities.')
    assert not osp.exists(work_dir)


def test_identity_with_infrared_images_only(toy, tmp_path, monkeypatch,
                                            capsys):
    for cam in ('cam1', 'cam2', 'cam4', 'cam5'):
        folder = osp.join(toy, cam, '0002')
        if osp.isdir(folder):
            shutil.rmtree(folder)
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir)
    assert code == 1
    # pid 2 is label 1 (labels enumerate the infrared pids: 1, 2, 4, ...)
    assert error_of(err) == (
        'ERROR: train_dataloader.sampler (CrossModalIdentitySampler) on '
        'train_dataloader.dataset (SYSUMM01Dataset): '
        'CrossModalIdentitySampler: every identity needs images in both '
        'modalities; in SYSUMM01Dataset, labels [] have no infrared image '
        'and labels [1] have no visible image.')
    assert not osp.exists(work_dir)


def test_descriptions_missing_for_some_images(toy, tmp_path, monkeypatch,
                                              capsys):
    path = osp.join(toy, 'descriptions.json')
    with open(path) as f:
        table = json.load(f)
    dropped = sorted(table)[:3]
    for key in dropped:
        del table[key]
    with open(path, 'w') as f:
        json.dump(table, f)
    cfg = write_config(
        tmp_path, toy,
        "train_dataloader = dict(dataset=dict(data_root=data_root, "
        "descriptions='descriptions.json'))")
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, cfg, '--work-dir', work_dir)
    assert code == 1
    msg = error_of(err)
    assert msg.startswith(
        'ERROR: train_dataloader.dataset (SYSUMM01Dataset): 3 of 164 '
        f'training images have no (or an empty) description in "{path}"; '
        f'the first is "{dropped[0]}" (keys are paths relative to "{toy}"). '
        'Create or complete it with `python tools/generate_descriptions.py '
        f'{cfg} --backend attributes`')
    assert not osp.exists(work_dir)


def test_truncated_image_is_named(toy, tmp_path, monkeypatch, capsys):
    from mmvireid.datasets import SYSUMM01Dataset

    # the first image the feature cache decodes
    image = SYSUMM01Dataset(toy, split='train').get_data_info(0)['img_path']
    with open(image, 'rb') as f:
        data = f.read()
    with open(image, 'wb') as f:
        f.write(data[:len(data) // 2])
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', str(tmp_path / 'work'))
    assert code == 1
    msg = error_of(err)
    assert msg.startswith(f'ERROR: Image file "{image}" cannot be decoded '
                          '(OSError: image file is truncated (')
    assert msg.endswith(
        'it is corrupt, truncated or not an image. Replace it with a good '
        'copy (re-extract the dataset) or remove it from the split files.')


# ------------------------------------------------------------------ configs
def test_unknown_component_type_suggests_the_registered_name(
        toy, tmp_path, monkeypatch, capsys):
    cfg = write_config(tmp_path, toy,
                       "model = dict(head=dict(type='BNNeckHaed'))")
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, cfg, '--work-dir', work_dir)
    assert code == 1
    assert error_of(err) == (
        'ERROR: model.head.type: unknown component type "BNNeckHaed"; it is '
        'not registered in any mmvireid/MMEngine registry. Did you mean '
        '"BNNeckHead"?')
    assert not osp.exists(work_dir)


def test_unknown_pipeline_type_in_a_list(toy, tmp_path, monkeypatch, capsys):
    cfg = write_config(
        tmp_path, toy, "train_dataloader = dict(dataset=dict("
        "data_root=data_root, pipeline=[dict(type='LoadImageFromFiles')]))")
    code, err = run_train(monkeypatch, capsys, cfg, '--work-dir',
                          str(tmp_path / 'work'))
    assert code == 1
    assert error_of(err) == (
        'ERROR: train_dataloader.dataset.pipeline[0].type: unknown component '
        'type "LoadImageFromFiles"; it is not registered in any '
        'mmvireid/MMEngine registry. Did you mean "LoadImageFromFile"?')


def test_unknown_component_key_suggests_the_argument(toy, tmp_path,
                                                     monkeypatch, capsys):
    cfg = write_config(tmp_path, toy,
                       "model = dict(num_classes=8, head=dict(pol='avg'))")
    code, err = run_train(monkeypatch, capsys, cfg, '--work-dir',
                          str(tmp_path / 'work'))
    assert code == 1
    assert error_of(err) == (
        'ERROR: BNNeckHead got an unknown config key "pol". Did you mean '
        '"pool"? It accepts: bn_bias_trainable, classifier_bias, '
        'classifier_std, in_channels, init_cfg, num_classes, pool.')


def test_misspelt_cfg_option_is_refused(toy, tmp_path, monkeypatch, capsys):
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--cfg-options',
                          'trian_cfg.val_interval=1')
    assert code == 1
    assert error_of(err) == (
        'ERROR: --cfg-options trian_cfg.val_interval: the config has no key '
        '"trian_cfg". Did you mean "train_cfg"?')
    assert not osp.exists(work_dir)


def test_data_root_variable_override_is_refused(toy, tmp_path, monkeypatch,
                                                capsys):
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--cfg-options',
                          'data_root=/elsewhere')
    assert code == 1
    assert error_of(err).startswith(
        'ERROR: --cfg-options data_root: "data_root" is a variable of the '
        'config file, already substituted where the file uses it')
    assert not osp.exists(work_dir)


@pytest.mark.parametrize('option, message', [
    ('train_dataloader.batch_size=48',
     'ERROR: train_dataloader.batch_size=48, but the '
     'CrossModalIdentitySampler step is 2 x num_ids x num_instances = '
     '2 x 4 x 4 = 32 images (P identities x K images, visible then '
     'infrared, aligned by position). Set batch_size=32, or change num_ids '
     '/ num_instances.'),
    ('model.num_classes=9',
     'ERROR: model.num_classes=9 but train_dataloader.dataset '
     '(SYSUMM01Dataset) has 8 train identities; set model.num_classes=8 in '
     'the config (or --cfg-options model.num_classes=8).'),
    ('train_cfg.stages.0.feature_cache.mode=pairs',
     'ERROR: train_cfg.stages[0].feature_cache: stage "prompt": '
     "feature_cache.mode must be one of ('shuffled', 'paired', 'sampled'), "
     "got 'pairs'"),
])
def test_training_settings_are_checked_first(toy, tmp_path, monkeypatch,
                                             capsys, option, message):
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--cfg-options', option)
    assert code == 1
    assert error_of(err) == message
    assert not osp.exists(work_dir)


def test_unwritable_work_dir(toy, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', str(blocker / 'wd'))
    assert code == 1
    assert error_of(err) == (
        f'ERROR: work_dir: cannot create "{blocker}/wd": "{blocker}" is a '
        'file, not a folder.')


# -------------------------------------------------------------- checkpoints
def test_resume_pointing_to_nothing(toy, tmp_path, monkeypatch, capsys):
    missing = str(tmp_path / 'work' / 'epoch_3.pth')
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--resume', missing)
    assert code == 1
    assert error_of(err) == (
        f'ERROR: --resume: checkpoint "{missing}" does not exist. Pass an '
        'existing .pth file, or --resume without a path to resume from the '
        'latest checkpoint of the work directory.')
    assert not osp.exists(work_dir)


def test_auto_resume_with_dangling_last_checkpoint(toy, tmp_path, monkeypatch,
                                                   capsys):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    target = str(work_dir / 'epoch_2.pth')
    (work_dir / 'last_checkpoint').write_text(target)
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', str(work_dir), '--resume')
    assert code == 1
    assert error_of(err) == (
        f'ERROR: --resume: "{work_dir}/last_checkpoint" names the checkpoint '
        f'"{target}", which does not exist. Resume from an existing '
        f'checkpoint with --resume {work_dir}/epoch_<N>.pth.')
    assert sorted(os.listdir(work_dir)) == ['last_checkpoint']


def _toy_model_state(num_classes: int) -> dict:
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/models/clip_vireid_tiny_vit.py'))
    cfg.model.num_classes = num_classes
    from mmvireid.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(cfg.model).state_dict()


@pytest.fixture(scope='module')
def five_class_checkpoint(tmp_path_factory):
    """A resume-style checkpoint of the toy model with 5 identities."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(
        dict(
            meta=dict(epoch=1, iter=3, seed=1234),
            state_dict=_toy_model_state(5)), path)
    return path


def test_resume_from_checkpoint_with_other_shapes_names_the_keys(
        toy, tmp_path, monkeypatch, capsys, five_class_checkpoint):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    ckpt = str(work_dir / 'epoch_1.pth')
    shutil.copy(five_class_checkpoint, ckpt)
    (work_dir / 'last_checkpoint').write_text(ckpt)
    before = open(ckpt, 'rb').read()
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', str(work_dir), '--resume')
    assert code == 1
    assert error_of(err) == (
        f'ERROR: Checkpoint "{ckpt}" does not fit the model: 3 tensor(s) '
        'have another shape:\n'
        '  prompt_learner.cls_ctx: checkpoint (5, 4, 64), model (8, 4, 64)\n'
        '  head.classifiers.0.weight: checkpoint (5, 64), model (8, 64)\n'
        '  head.classifiers.1.weight: checkpoint (5, 64), model (8, 64)\n'
        'Resume with the config this checkpoint was trained with (same '
        'model, e.g. num_classes and backbone).')
    assert open(ckpt, 'rb').read() == before
    assert sorted(glob.glob(str(work_dir / '*.pth'))) == [ckpt]


def test_load_from_checkpoint_with_other_shapes(toy, tmp_path, monkeypatch,
                                                capsys, five_class_checkpoint):
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path,
                                                            toy), '--work-dir',
                          str(tmp_path / 'work'), '--cfg-options',
                          f'load_from={five_class_checkpoint}')
    assert code == 1
    assert error_of(err).endswith(
        'Use the config the checkpoint was trained with, or set '
        'default_hooks.checkpoint.strict_shapes=False to load the other '
        'weights and keep these initialised (e.g. a classifier for another '
        'number of identities).')


def test_auto_resume_from_a_truncated_checkpoint_names_it(
        toy, tmp_path, monkeypatch, capsys, five_class_checkpoint):
    """The path through MMEngine's resume and our loader."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    ckpt = str(work_dir / 'epoch_1.pth')
    with open(five_class_checkpoint, 'rb') as f, open(ckpt, 'wb') as g:
        g.write(f.read()[:4096])
    (work_dir / 'last_checkpoint').write_text(ckpt)
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', str(work_dir), '--resume')
    assert code == 1
    msg = error_of(err)
    assert msg.startswith(f'ERROR: Checkpoint {ckpt} is corrupt or truncated '
                          'and cannot be read (')
    assert os.path.getsize(ckpt) == 4096


def test_explicit_resume_from_a_truncated_checkpoint(toy, tmp_path,
                                                     monkeypatch, capsys,
                                                     five_class_checkpoint):
    ckpt = str(tmp_path / 'epoch_1.pth')
    with open(five_class_checkpoint, 'rb') as f, open(ckpt, 'wb') as g:
        g.write(f.read()[:4096])
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--resume', ckpt)
    assert code == 1
    assert error_of(err) == (
        f'ERROR: --resume: checkpoint "{ckpt}" is corrupt or truncated '
        '(empty, or its zip directory is missing). Resume from an earlier '
        'checkpoint of the same work directory.')
    assert not osp.exists(work_dir)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def test_resume_from_a_code_executing_checkpoint_is_refused(
        toy, tmp_path, monkeypatch, capsys):
    ckpt = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict={}, payload=_Evil()), ckpt)
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path,
                                                            toy), '--work-dir',
                          str(tmp_path / 'work'), '--resume', ckpt)
    assert code == 1
    assert error_of(err).startswith(
        f'ERROR: Refusing to load checkpoint {ckpt}: it references objects '
        'outside the allow-list of a mmvireid/mmengine checkpoint, so '
        'loading it could execute code.')


class _CreatesFile:
    """Unpickling it would create ``path`` (proof the payload ran)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.parametrize('loader', ['clip_weights', 'checkpoint'])
def test_code_executing_weights_never_run(tmp_path, loader):
    """Both ways weights enter a model — CLIP weights from a local path and
    MMEngine checkpoints — unpickle without running the file's code."""
    marker = tmp_path / 'payload_ran'
    path = str(tmp_path / 'weights.pth')
    torch.save(
        {
            'visual.conv1.weight': torch.zeros(1),
            'x': _CreatesFile(str(marker))
        }, path)
    if loader == 'clip_weights':
        from mmvireid.models.utils.open_clip_builder import \
            load_clip_state_dict
        with pytest.raises(RuntimeError) as exc:
            load_clip_state_dict(path)
        assert str(exc.value).startswith(
            f'Could not read {path} with torch.load(weights_only=True): ')
    else:
        from mmengine.runner.checkpoint import CheckpointLoader

        from mmvireid.utils import UnsafeCheckpointError
        with pytest.raises(UnsafeCheckpointError,
                           match=f'Refusing to load checkpoint {path}'):
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()


def test_resume_from_another_methods_checkpoint_is_refused_first(
        toy, tmp_path, monkeypatch, capsys):
    ckpt = str(tmp_path / 'eees.pth')
    torch.save(
        dict(meta=dict(epoch=1, cfg="model = dict(type='EEES')",
                       stage_plan=[dict(name='prompt', epochs=1),
                                   dict(name='finetune', epochs=1)]),
             state_dict={}), ckpt)
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--resume', ckpt)
    assert code == 1
    assert error_of(err) == (
        f'ERROR: --resume: checkpoint "{ckpt}" was saved by a EEES model, '
        'but this config trains a CLIPVIReID. Resume with the config it was '
        'trained with, or start a new work directory.')
    assert not osp.exists(work_dir)


def test_resume_with_another_stage_plan_is_refused_first(
        toy, tmp_path, monkeypatch, capsys):
    ckpt = str(tmp_path / 'plan.pth')
    torch.save(
        dict(meta=dict(epoch=2, stage_plan=[dict(name='prompt', epochs=2),
                                            dict(name='finetune', epochs=3)]),
             state_dict={}), ckpt)
    work_dir = str(tmp_path / 'work')
    code, err = run_train(monkeypatch, capsys, write_config(tmp_path, toy),
                          '--work-dir', work_dir, '--resume', ckpt)
    assert code == 1
    assert error_of(err) == (
        'ERROR: The checkpoint to resume (epoch 2) was trained with the stage '
        'plan [prompt 2, finetune 3], whose first 2 epochs this config\'s '
        'plan [prompt 1, finetune 1] does not repeat. Resume with the plan it '
        'was trained with; only the stage in progress and later ones may '
        'change.')
    assert not osp.exists(work_dir)
