# Copyright (c) mmvireid contributors. All rights reserved.
"""The EEES model: description features encoded once and looked up by
sample index, the fine-tuning losses, ablation switches, description
errors, and the configs."""
import glob
import importlib.util
import os
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmvireid.models.losses import (cmsp_loss, cvsc_loss, ese_loss,
                                    image_text_ce_loss, wrt_triplet_loss)
from mmvireid.registry import DATASETS, MODELS
from mmvireid.utils import register_all_modules

register_all_modules()
ROOT = osp.join(osp.dirname(__file__), '..', '..')


def _toy_generator():
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'make_toy_vireid.py')
    spec = importlib.util.spec_from_file_location('make_toy_vireid', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_toy_dataset = _toy_generator().make_toy_dataset

# A very small random CLIP: 1-layer ViT on 32x16 images, 1-layer text tower.
ARCH = dict(
    embed_dim=24,
    vision_cfg=dict(
        image_size=(32, 16), patch_size=8, width=32, layers=1,
        head_width=16),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
NUM_CLASSES = 3


def build_model(seed=0, **kwargs):
    cfg = dict(
        type='EEES',
        num_classes=NUM_CLASSES,
        data_preprocessor=dict(type='VIReIDDataPreprocessor'),
        image_encoder=dict(
            type='CLIPImageEncoder',
            arch=ARCH,
            input_size=(32, 16),
            stride_size=8,
            modality_specific_stem=True),
        text_encoder=dict(type='CLIPTextEncoder', arch=ARCH),
        prompt_learner=dict(type='IDPromptLearner', embed_width=32),
        head=dict(type='BNNeckHead', pool='gem', bn_bias_trainable=True),
        ese_loss=dict(type='ESELoss', temperature=0.1, loss_weight=0.5),
        cvsc_loss=dict(type='CVSCLoss', temperature=0.2, loss_weight=0.7),
        cmsp_loss=dict(type='CMSPLoss', anchor='both', loss_weight=2.0),
        desc_batch_size=4)
    cfg.update(kwargs)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


class FakeTrainSet:
    """What prepare_stage_data reads: len() and get_data_info(i)['text']."""

    def __init__(self, texts):
        self.texts = texts

    def __len__(self):
        return len(self.texts)

    def get_data_info(self, idx):
        info = dict(img_path=f'cam1/0001/{idx:04d}.jpg', sample_idx=idx)
        if self.texts[idx] is not None:
            info['text'] = self.texts[idx]
        return info


# 3 identities x 2 modalities x 2 views; texts repeat per identity/modality
TEXTS = [
    f'A {who} wearing a {colour}top.' for who in ('man', 'woman', 'child')
    for colour in ('red ', '') for _ in range(2)
]
LABELS = [p for p in range(3) for _ in range(4)]
MODALITIES = ['vis', 'vis', 'ir', 'ir'] * 3


def image_batch(indices, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for idx in indices:
        inputs.append(
            torch.randint(0, 256, (3, 32, 16), generator=gen,
                          dtype=torch.uint8))
        sample = DataSample().set_gt_label(LABELS[idx])
        sample.set_metainfo(
            dict(modality=MODALITIES[idx], cam_id=1, sample_idx=idx))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def count_encoded(model):
    """Wrap encode_texts to record every batch of texts it encodes."""
    calls = []
    original = model.text_encoder.encode_texts

    def spy(texts):
        calls.append(list(texts))
        return original(texts)

    model.text_encoder.encode_texts = spy
    return calls


def test_descriptions_encoded_once_per_distinct_text():
    model = build_model()
    calls = count_encoded(model)
    model.switch_stage('prompt')
    model.prepare_stage_data('prompt', FakeTrainSet(TEXTS))
    assert calls == [] and model.desc_feats is None  # not needed there
    model.switch_stage('finetune')
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
    # 6 distinct texts in batches of desc_batch_size=4
    assert [len(c) for c in calls] == [4, 2]
    assert sorted(sum(calls, [])) == sorted(set(TEXTS))
    # row i is the feature of text i (computed here independently)
    with torch.no_grad():
        expected = model.text_encoder.encode_tokens(
            model.text_encoder.tokenize(TEXTS))
    assert model.desc_feats.shape == (12, ARCH['embed_dim'])
    torch.testing.assert_close(model.desc_feats, expected)
    # the same texts again (stage re-entered): nothing re-encoded
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
    assert len(calls) == 2
    # other texts: encoded again
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS[::-1]))
    assert len(calls) == 4
    torch.testing.assert_close(model.desc_feats, expected.flip(0))
    # derived data: not in checkpoints
    assert 'desc_feats' not in model.state_dict()


def test_missing_description_names_item_and_command():
    model = build_model()
    model.switch_stage('finetune')
    texts = list(TEXTS)
    texts[5] = None
    with pytest.raises(ValueError) as err:
        model.prepare_stage_data('finetune', FakeTrainSet(texts))
    msg = str(err.value)
    assert 'item 5 ("cam1/0001/0005.jpg") of FakeTrainSet has none' in msg
    assert 'descriptions="descriptions.json"' in msg
    assert 'python tools/generate_descriptions.py CONFIG' in msg
    texts[5] = '   '
    with pytest.raises(ValueError, match='item 5'):
        model.prepare_stage_data('finetune', FakeTrainSet(texts))


def test_finetune_losses_use_each_sample_description():
    model = build_model()
    model.train()
    model.switch_stage('finetune')
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
    # any order: the rows are looked up by sample_idx
    order = [4, 0, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    data = model.data_preprocessor(image_batch(order), True)
    losses = model(**data, mode='loss')
    assert {'loss_id', 'loss_triplet', 'loss_i2t', 'loss_ese', 'loss_cvsc',
            'loss_cmsp'} <= set(losses)
    # the head's outputs come from the forward function, not from a hook
    assert not model.head._forward_hooks
    # recompute from the same inputs (the tiny ViT has no dropout; the
    # projected feature does not pass the head's BN)
    samples = data['data_samples']
    _, proj = model.image_features(data['inputs'], samples)
    text = model.desc_feats[torch.tensor(order)]
    y = torch.tensor([LABELS[i] for i in order])
    m = torch.tensor([int(MODALITIES[i] == 'ir') for i in order])
    torch.testing.assert_close(
        losses['loss_ese'], 0.5 * ese_loss(proj, text, y, m, 0.1))
    torch.testing.assert_close(
        losses['loss_cvsc'], 0.7 * cvsc_loss(proj, text, y, m, 0.2))
    torch.testing.assert_close(losses['loss_cmsp'],
                               2.0 * cmsp_loss(proj, text, y, m, 'both'))
    # the semantic losses train the image encoder, never the text encoder
    model.zero_grad()
    (losses['loss_ese'] + losses['loss_cvsc'] + losses['loss_cmsp']).backward()
    assert model.image_encoder.visual.conv1.weight.grad.abs().sum() > 0
    assert model.image_encoder.ir_stem.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.text_encoder.parameters())


def test_grad_share_tool_measures_every_term():
    """tools/analysis_tools/loss_grad_share.py: one gradient per term, on
    the projected feature v and on the parameters; the shares sum to 1 and
    scale with a term's weight."""
    spec = importlib.util.spec_from_file_location(
        'loss_grad_share',
        osp.join(ROOT, 'tools', 'analysis_tools', 'loss_grad_share.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def shares(cmsp_weight):
        model = build_model(
            cmsp_loss=dict(type='CMSPLoss', loss_weight=cmsp_weight))
        model.train()
        model.switch_stage('finetune')
        model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
        params = [p for p in model.parameters() if p.requires_grad]
        batches = [image_batch(range(12), seed=s) for s in range(2)]
        return tool.grad_shares(model, batches, params)

    table = shares(1.0)
    assert set(table) == {'loss_id', 'loss_triplet', 'loss_i2t', 'loss_ese',
                          'loss_cvsc', 'loss_cmsp'}
    for norm in ('share_v', 'share_param'):
        assert sum(r[norm] for r in table.values()) == pytest.approx(1)
    assert all(r['grad_v'] > 0 for k, r in table.items() if k != 'loss_id')
    heavy = shares(10.0)
    assert heavy['loss_cmsp']['grad_v'] == pytest.approx(
        10 * table['loss_cmsp']['grad_v'], rel=1e-4)
    assert heavy['loss_cmsp']['share_v'] > table['loss_cmsp']['share_v']
    assert '| loss_cmsp |' in tool.markdown(table)


def test_semantic_feature_after_bn():
    model = build_model(semantic_feature='proj_bn', cvsc_loss=None,
                        cmsp_loss=None)
    model.train()
    model.switch_stage('finetune')
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
    data = model.data_preprocessor(image_batch(range(12)), True)
    captured = []
    model.head.register_forward_hook(lambda mod, a, out: captured.append(out))
    losses = model(**data, mode='loss')
    bn_proj = captured[0]['bn_feats'][1]
    y, m = torch.tensor(LABELS), torch.tensor(
        [int(x == 'ir') for x in MODALITIES])
    torch.testing.assert_close(
        losses['loss_ese'],
        0.5 * ese_loss(bn_proj, model.desc_feats, y, m, 0.1))


def test_ablation_switches():
    model = build_model(ese_loss=None, cmsp_loss=None)
    model.switch_stage('finetune')
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS))
    data = model.data_preprocessor(image_batch(range(12)), True)
    assert set(model(**data, mode='loss')) == {
        'loss_id', 'loss_triplet', 'loss_i2t', 'acc', 'loss_cvsc'
    }
    # all off: the baseline, no description needed at all
    model = build_model(ese_loss=None, cvsc_loss=None, cmsp_loss=None)
    calls = count_encoded(model)
    model.switch_stage('finetune')
    model.prepare_stage_data('finetune', FakeTrainSet([None] * 12))
    assert calls == [] and model.desc_feats is None
    assert set(model(**data, mode='loss')) == {
        'loss_id', 'loss_triplet', 'loss_i2t', 'acc'
    }


def test_finetune_without_prepared_descriptions_fails_clearly():
    model = build_model()
    model.switch_stage('finetune')
    data = model.data_preprocessor(image_batch(range(12)), True)
    with pytest.raises(RuntimeError,
                       match='description features are missing'):
        model(**data, mode='loss')
    model.prepare_stage_data('finetune', FakeTrainSet(TEXTS[:6]))
    with pytest.raises(IndexError, match='sample_idx 6 is outside the 6 '
                       'encoded descriptions'):
        model(**data, mode='loss')


def test_prediction_needs_no_text():
    model = build_model()
    model.eval()
    data = model.data_preprocessor(image_batch([0, 2]), False)
    out = model(**data, mode='predict')
    # test feature: concat(L2(BN(GeM f)), L2(v)) = 32 + 24
    assert out[0].pred_feat.shape == (56, )


def test_argument_errors():
    with pytest.raises(ValueError, match="semantic_feature must be 'proj' "
                       "or 'proj_bn', got 'feat'"):
        build_model(semantic_feature='feat')
    other = dict(ARCH, embed_dim=16)
    with pytest.raises(ValueError, match='the projected image feature has '
                       '24 dims but the text encoder embeds to 16'):
        build_model(text_encoder=dict(type='CLIPTextEncoder', arch=other))
    # the removed model-level weights: the message says what to write
    with pytest.raises(
            TypeError,
            match=r"EEES: `loss_weights` is no longer accepted; .* Instead "
            r"of loss_weights=\{'triplet': 0\.15, 'i2t': 0\.1\} write "
            r"triplet_loss=dict\(\.\.\., loss_weight=0\.15\), "
            r"i2t_loss=dict\(\.\.\., loss_weight=0\.1\) in the model "
            r"config \(on the command line: --cfg-options "
            r"model\.triplet_loss\.loss_weight=0\.15 "
            r"model\.i2t_loss\.loss_weight=0\.1\)"):
        build_model(loss_weights=dict(triplet=0.15, i2t=0.1))


def test_baseline_weights_are_the_loss_configs():
    """eees_rn50.py's 0.15 triplet and 0.1 i2t weights live in the loss
    configs, applied once to the triplet sum over f and v."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'models', 'eees_rn50.py'))
    assert 'loss_weights' not in cfg.model
    assert cfg.model.triplet_loss.loss_weight == 0.15
    assert cfg.model.i2t_loss.loss_weight == 0.1
    model = build_model(
        ese_loss=None, cvsc_loss=None, cmsp_loss=None,
        triplet_loss=dict(type='WRTTripletLoss', loss_weight=0.15),
        i2t_loss=dict(type='ImageTextCELoss', loss_weight=0.1),
        triplet_features=('feat', 'proj'))
    model.train()
    model.switch_stage('finetune')
    data = model.data_preprocessor(image_batch(range(12)), True)
    losses = model(**data, mode='loss')
    out = model.train_features(data['inputs'],
                               model.modalities_of(data['data_samples']),
                               model.cams_of(data['data_samples']))
    y = torch.tensor(LABELS)
    f, v = out['feats']
    assert torch.equal(losses['loss_triplet'],
                       0.15 * (wrt_triplet_loss(f, y) + wrt_triplet_loss(v, y)))
    assert torch.equal(
        losses['loss_i2t'],
        0.1 * image_text_ce_loss(v, model.class_text_feats, y))


def test_loss_without_sequence_input_is_called_per_branch():
    """A loss module of one input (not a WeightedLoss) still serves as the
    ID loss: it is called per branch and the calls are summed."""

    @MODELS.register_module(force=True)
    class PlainCrossEntropy(torch.nn.Module):

        def forward(self, logits, labels):
            return F.cross_entropy(logits, labels.to(logits.device))

    model = build_model(
        ese_loss=None, cvsc_loss=None, cmsp_loss=None,
        id_loss=dict(type='PlainCrossEntropy'))
    model.train()
    model.switch_stage('finetune')
    data = model.data_preprocessor(image_batch(range(12)), True)
    losses = model(**data, mode='loss')
    out = model.train_features(data['inputs'],
                               model.modalities_of(data['data_samples']),
                               model.cams_of(data['data_samples']))
    y = torch.tensor(LABELS)
    assert torch.equal(
        losses['loss_id'],
        F.cross_entropy(out['logits'][0], y) +
        F.cross_entropy(out['logits'][1], y))


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------


def test_configs_load_and_ablations_switch_losses():
    for name in ('eees_sysu', 'eees_regdb', 'eees_llcm', 'eees_toy'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
        assert cfg.model.type == 'EEES'
        assert cfg.train_dataloader.dataset.descriptions == \
            'descriptions.json'
        assert [s['name'] for s in cfg.train_cfg.stages] == \
            ['prompt', 'finetune']
    names = ('ese', 'cvsc', 'cmsp')
    expected = {
        'baseline': set(),
        'ese_only': {'ese'},
        'cvsc_only': {'cvsc'},
        'cmsp_only': {'cmsp'},
        'no_ese': {'cvsc', 'cmsp'},
        'no_cvsc': {'ese', 'cmsp'},
        'no_cmsp': {'ese', 'cvsc'},
    }
    files = sorted(
        glob.glob(osp.join(ROOT, 'configs', 'eees_ablation', '*.py')))
    assert sorted(osp.basename(f) for f in files) == sorted(
        f'eees_toy_{k}.py' for k in expected)
    for key, on in expected.items():
        cfg = Config.fromfile(
            osp.join(ROOT, 'configs', 'eees_ablation', f'eees_toy_{key}.py'))
        assert {n for n in names if cfg.model[f'{n}_loss']} == on, key
        assert cfg.model.image_encoder.arch['embed_dim'] == 64


def test_sysu_config_without_data_or_descriptions(tmp_path):
    """The EEES SYSU train set stops with what is missing and how to make
    it: first the data, then the descriptions."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'eees_sysu.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg['data_root'] = str(tmp_path / 'sysu')
    with pytest.raises(FileNotFoundError, match='data_root folder'):
        DATASETS.build(ds_cfg)
    # the data but not its descriptions file
    make_toy_dataset('sysu', str(tmp_path / 'sysu'), num_ids=4,
                     imgs_per_cam=1, verbose=False)
    os.remove(tmp_path / 'sysu' / 'descriptions.json')
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(ds_cfg)
    msg = str(err.value)
    assert osp.join(str(tmp_path / 'sysu'), 'descriptions.json') in msg
    assert 'python tools/generate_descriptions.py' in msg


def test_missing_descriptions_error_prints_the_command(tmp_path):
    """tools/train.py's preflight: the error names the file and the exact
    command for the config at hand (the vlm backend for real data, the
    attributes backend where the data has an attributes.json), with
    --data-root when the training overrides the config's."""
    from mmvireid.datasets.descriptions import generate_hint
    from mmvireid.utils.tool_utils import UserInputError, preflight_datasets
    config = osp.join(ROOT, 'configs', 'eees_sysu.py')
    cfg = Config.fromfile(config)
    root = str(tmp_path / 'sysu')
    make_toy_dataset('sysu', root, num_ids=4, imgs_per_cam=1, verbose=False)
    os.remove(osp.join(root, 'descriptions.json'))
    os.remove(osp.join(root, 'attributes.json'))  # as real SYSU-MM01
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader]['dataset']['data_root'] = root
    with pytest.raises(UserInputError) as err:
        preflight_datasets(cfg, check_files=False)
    msg = str(err.value)
    assert msg.startswith('train_dataloader.dataset (SYSUMM01Dataset): The '
                          f'descriptions file "{root}/descriptions.json" '
                          'does not exist.')
    assert (f'`python tools/generate_descriptions.py {config} --backend vlm '
            f'--model llava-hf/llava-1.5-7b-hf --data-root {root}`') in msg
    # the config's own data_root needs no --data-root; toy data with an
    # attribute table gets the attributes command
    assert generate_hint('configs/eees_sysu.py', root).startswith(
        'Create or complete it with `python tools/generate_descriptions.py '
        'configs/eees_sysu.py --backend vlm --model '
        'llava-hf/llava-1.5-7b-hf`')
    with open(osp.join(root, 'attributes.json'), 'w') as f:
        f.write('{}')
    assert '--backend attributes`' in generate_hint('configs/eees_toy.py',
                                                    root)
    # some images without text: the same command (it completes the file)
    with open(osp.join(root, 'descriptions.json'), 'w') as f:
        f.write('{}')
    os.remove(osp.join(root, 'attributes.json'))
    with pytest.raises(UserInputError) as err:
        preflight_datasets(cfg, check_files=False)
    assert 'training images have no (or an empty) description' in str(
        err.value)
    assert '--backend vlm --model llava-hf/llava-1.5-7b-hf' in str(err.value)


# ---------------------------------------------------------------------------
# Through a real Runner: StageSwitchHook -> prepare_stage_data
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def tiny_toy(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('eees_toy') / 'sysu')
    summary = make_toy_dataset(
        'sysu', out, num_ids=6, seed=0, imgs_per_cam=2, img_size=(32, 16),
        verbose=False)
    return out, summary['ids']['train'] + summary['ids']['val']


def runner_cfg(root, num_ids, work_dir, name, **kwargs):
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow'),
        dict(type='PackVIReIDInputs')
    ]
    optim = Config.fromfile(osp.join(ROOT, 'configs',
                                     'eees_toy.py')).optim_wrapper.to_dict()
    cfg = dict(
        default_scope='mmvireid',
        model=dict(
            type='EEES',
            num_classes=num_ids,
            data_preprocessor=dict(type='VIReIDDataPreprocessor'),
            image_encoder=dict(
                type='CLIPImageEncoder', arch=ARCH, input_size=(32, 16),
                stride_size=8, modality_specific_stem=True),
            text_encoder=dict(type='CLIPTextEncoder', arch=ARCH),
            prompt_learner=dict(type='IDPromptLearner', embed_width=32),
            head=dict(type='BNNeckHead', pool='gem')),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(
                type='CrossModalIdentitySampler', num_ids=2,
                num_instances=2),
            dataset=dict(
                type='SYSUMM01Dataset', data_root=root, split='train',
                descriptions='descriptions.json', pipeline=pipeline)),
        train_cfg=dict(
            type='MultiStageTrainLoop',
            stages=[
                dict(name='prompt', epochs=1, validate=False,
                     feature_cache=dict(pipeline=pipeline, batch_size=8,
                                        extract_batch_size=16)),
                dict(name='finetune', epochs=2, validate=False),
            ]),
        optim_wrapper=optim,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='StageSwitchHook')],
        randomness=dict(seed=3),
        log_level='WARNING')
    cfg.update(kwargs)
    return Config(cfg)


@pytest.fixture
def single_thread():
    """Tiny models: one intra-op thread is faster and does not oversubscribe
    a busy CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_runner_encodes_once_and_resume_reencodes(tiny_toy, tmp_path,
                                                  single_thread):
    from mmengine.runner import Runner
    root, num_ids = tiny_toy
    runner = Runner.from_cfg(
        runner_cfg(root, num_ids, str(tmp_path / 'a'), 'eees_a'))
    calls = count_encoded(runner.model)
    runner.train()
    train_set = runner.train_dataloader.dataset
    texts = [
        train_set.get_data_info(i)['text'] for i in range(len(train_set))
    ]
    # one pass over the distinct texts for the two finetune epochs
    assert sorted(sum(calls, [])) == sorted(set(texts))
    feats = runner.model.desc_feats
    assert feats.shape == (len(train_set), ARCH['embed_dim'])
    with torch.no_grad():
        expected = runner.model.text_encoder.encode_tokens(
            runner.model.text_encoder.tokenize(texts))
    torch.testing.assert_close(feats, expected)
    scalars = runner.message_hub.log_scalars
    for key in ('loss_ese', 'loss_cvsc', 'loss_cmsp', 'loss_id'):
        assert f'train/{key}' in scalars
    # the buffer is not checkpointed; a run resumed inside finetune
    # re-encodes on entering the stage
    ckpt = torch.load(tmp_path / 'a' / 'epoch_2.pth', map_location='cpu',
                      weights_only=False)
    assert not any('desc_feats' in k for k in ckpt['state_dict'])
    runner = Runner.from_cfg(
        runner_cfg(root, num_ids, str(tmp_path / 'b'), 'eees_b',
                   resume=True, load_from=str(tmp_path / 'a' /
                                              'epoch_2.pth')))
    calls = count_encoded(runner.model)
    runner.train()
    assert sorted(sum(calls, [])) == sorted(set(texts))
    torch.testing.assert_close(runner.model.desc_feats, feats)
