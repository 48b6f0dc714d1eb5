# Copyright (c) mmvireid contributors. All rights reserved.
"""The helpers behind the tools' messages (``mmvireid.utils.tool_utils``)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmvireid.registry import MODELS
from mmvireid.utils import register_all_modules
from mmvireid.utils.checkpoint import CorruptCheckpointError
from mmvireid.utils.tool_utils import (UserInputError, check_auto_resume,
                                       check_cfg_options, closest_names,
                                       explain_error, preflight_config,
                                       run_or_explain, setup_cpu_distributed)

register_all_modules()

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py')))
CONFIGS = [c for c in CONFIGS if '_base_' not in c]


def test_closest_names():
    names = ['BNNeckHead', 'GeMPooling', 'CLIPVIReID', 'CSDN']
    assert closest_names('BNNeckHaed', names) == ['BNNeckHead']
    # a case-insensitive equal name comes first
    assert closest_names('clipvireid', names)[0] == 'CLIPVIReID'
    assert closest_names('Transformer', names) == []


@pytest.mark.parametrize(
    'config', CONFIGS, ids=[osp.relpath(c, REPO_ROOT) for c in CONFIGS])
def test_every_shipped_config_passes_the_type_check(config):
    preflight_config(Config.fromfile(config))


def test_type_check_honours_scopes():
    preflight_config(
        Config(
            dict(pipeline=[
                dict(type='mmpretrain.RandomCrop', crop_size=4),
                dict(type='RandomCrop', _scope_='mmpretrain', crop_size=4)
            ])))
    with pytest.raises(UserInputError) as exc:
        preflight_config(
            Config(dict(pipeline=[dict(type='mmpretrain.RandomCorp')])))
    assert str(exc.value) == (
        'pipeline[0].type: unknown component type "mmpretrain.RandomCorp"; '
        'it is not registered in any mmvireid/MMEngine registry. Did you '
        'mean "mmpretrain.RandomCrop"?')


def test_cfg_options_may_add_keys_but_not_misspell_them():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/clip_vireid_toy.py'))
    # new keys without a close existing spelling are legitimate
    check_cfg_options(cfg, {'sync_bn': 'torch'})
    check_cfg_options(cfg, {'train_dataloader.num_batch_per_epoch': 2})
    check_cfg_options(cfg, {'model.i2t_loss.loss_weight': 0.5})
    check_cfg_options(cfg, {'train_cfg.stages.1.epochs': 3})
    # top level: only the Runner's keys are read
    with pytest.raises(UserInputError) as exc:
        check_cfg_options(cfg, {'data_root': '/data/other'})
    assert str(exc.value) == (
        '--cfg-options data_root: "data_root" is a variable of the config '
        'file, already substituted where the file uses it; overriding it '
        'changes nothing the run reads. Set the keys that use it instead: '
        'train_dataloader.dataset.data_root=..., '
        'val_dataloader.dataset.data_root=..., '
        'test_dataloader.dataset.data_root=....')
    with pytest.raises(UserInputError,
                       match='"max_epochs" is neither a key of the config '
                       'nor one the Runner reads'):
        check_cfg_options(cfg, {'max_epochs': 3})
    cases = {
        'model.num_clases':
        '"model.num_clases". Did you mean '
        '"model.num_classes"?',
        'train_cfg.stages.1.epoch':
        '"train_cfg.stages.1.epoch". Did you '
        'mean "train_cfg.stages.1.epochs"?',
        'train_dataloader.batchsize':
        '"train_dataloader.batchsize". Did '
        'you mean "train_dataloader.batch_size"?',
    }
    for key, tail in cases.items():
        with pytest.raises(UserInputError) as exc:
            check_cfg_options(cfg, {key: 1})
        assert str(exc.value) == (
            f'--cfg-options {key}: the config has no key {tail}')


def test_explain_registry_and_argument_errors():
    with pytest.raises(KeyError) as exc:
        MODELS.build(dict(type='HardTripletLos'))
    assert explain_error(exc.value) == (
        'unknown model type "HardTripletLos" (not in the mmvireid::model '
        'registry). Did you mean "HardTripletLoss"?')
    with pytest.raises(TypeError) as exc:
        MODELS.build(dict(type='HardTripletLoss', margn=0.3))
    assert explain_error(exc.value).startswith(
        'HardTripletLoss got an unknown config key "margn". Did you mean '
        '"margin"? It accepts: ')
    # bugs stay bugs
    assert explain_error(TypeError('unsupported operand')) is None
    assert explain_error(KeyError('missing')) is None
    assert explain_error(ValueError('x')) is None
    err = CorruptCheckpointError('Checkpoint a.pth is corrupt or truncated')
    assert explain_error(err) == 'Checkpoint a.pth is corrupt or truncated'


def test_run_or_explain(capsys):

    def user_error():
        raise UserInputError('the config is wrong')

    with pytest.raises(SystemExit) as exc:
        run_or_explain(user_error)
    assert exc.value.code == 1
    assert capsys.readouterr().err == 'ERROR: the config is wrong\n'

    def bug():
        raise ZeroDivisionError('a bug')

    with pytest.raises(ZeroDivisionError, match='a bug'):
        run_or_explain(bug)
    assert run_or_explain(lambda: 42) == 42


def test_check_auto_resume(tmp_path):
    import torch
    # nothing to resume from: training starts from scratch (re-queued jobs)
    assert check_auto_resume(str(tmp_path)) is None
    # a run killed before last_checkpoint was first written (missing or
    # empty): the newest complete epoch_N.pth, not a truncated one
    torch.save(dict(state_dict={}), str(tmp_path / 'epoch_1.pth'))
    torch.save(dict(state_dict={}), str(tmp_path / 'epoch_2.pth'))
    (tmp_path / 'epoch_3.pth').write_bytes(
        (tmp_path / 'epoch_2.pth').read_bytes()[:50])
    assert check_auto_resume(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text('  \n')
    assert check_auto_resume(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    # a pointer to a file that does not exist is refused
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_9.pth'))
    with pytest.raises(UserInputError) as exc:
        check_auto_resume(str(tmp_path))
    assert str(exc.value) == (
        f'--resume: "{tmp_path}/last_checkpoint" names the checkpoint '
        f'"{tmp_path}/epoch_9.pth", which does not exist. Resume from an '
        f'existing checkpoint with --resume {tmp_path}/epoch_<N>.pth.')
    # a valid pointer: mmengine follows it
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert check_auto_resume(str(tmp_path)) is None


def test_setup_cpu_distributed_without_launcher_changes_nothing():
    cfg = Config(dict(launcher='none', model_wrapper_cfg=dict(type='X')))
    assert setup_cpu_distributed(cfg) is False
    assert cfg.model_wrapper_cfg == dict(type='X')


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_setup_cpu_distributed_refuses_slurm_without_gpus():
    with pytest.raises(UserInputError) as exc:
        setup_cpu_distributed(Config(dict(launcher='slurm')))
    assert str(exc.value) == (
        '--launcher slurm needs CUDA GPUs, and none is available. On CPU, '
        'launch with torchrun (tools/dist_train.sh, --launcher pytorch), '
        'which uses the gloo backend.')


def test_check_writable(tmp_path):
    from mmvireid.utils.tool_utils import check_writable
    # creatable paths pass: a new file in a new folder, an existing folder
    check_writable(str(tmp_path / 'new' / 'results.json'), '--out', False)
    check_writable(str(tmp_path), '--show-dir', True)
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(UserInputError) as exc:
        check_writable(str(blocker / 'results.json'), '--out', False)
    assert str(exc.value) == (
        f'--out: cannot create "{blocker}/results.json": "{blocker}" is a '
        'file, not a folder.')
    with pytest.raises(UserInputError, match='is a folder; give a file'):
        check_writable(str(tmp_path), '--out', False)

