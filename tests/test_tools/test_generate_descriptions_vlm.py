# Copyright (c) mmvireid contributors. All rights reserved.
"""The vlm backend of tools/generate_descriptions.py on a real model: a
tiny random-init LLaVA built here from transformers' config classes and a
tokenizer trained here (nothing is downloaded), saved to a folder and loaded
by the tool by name through the auto classes.

* the whole of a 2:1 image reaches the model (padded to a square), where
  the processor's own centre crop would cut off head and feet;
* end to end: the real tool writes the descriptions of a toy train set,
  ``--check`` passes, and ``tools/train.py configs/eees_toy.py`` trains one
  iteration of each stage on them.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmvireid.datasets import SYSUMM01Dataset

transformers = pytest.importorskip('transformers')
tokenizers = pytest.importorskip('tokenizers')

ROOT = osp.join(osp.dirname(__file__), '..', '..')
TOY_CONFIG = osp.join(ROOT, 'configs', 'eees_toy.py')
SIDE = 28  # the tiny processor's square: 2 x 2 patches of 14
SPECIALS = ['<unk>', '<s>', '</s>', '<pad>', '<image>']


def _load(name, *parts):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gd = _load('generate_descriptions', 'tools', 'generate_descriptions.py')


def build_tiny_llava():
    """A LLaVA-1.5-layout model (CLIP vision tower, 2-layer Llama) of width
    32 with a byte-level BPE tokenizer trained on the prompts, and its
    processor (CLIP image processor: shortest edge 28, centre crop 28 x 28,
    as LLaVA-1.5's does at 336) with the chat template. The same weights
    and vocabulary on every call.

    Returns:
        tuple: ``(model, processor)``.
    """
    from tokenizers import (Tokenizer, decoders, models, pre_tokenizers,
                            trainers)
    from transformers import (CLIPImageProcessor, CLIPVisionConfig,
                              LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor,
                              PreTrainedTokenizerFast)
    corpus = [gd.VIS_PROMPT, gd.IR_PROMPT] + [
        'A man with short hair, wearing a striped top, trousers and shoes, '
        'carrying a backpack.'
    ] * 4
    bpe = Tokenizer(models.BPE(unk_token='<unk>'))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=320, special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token='<unk>', bos_token='<s>',
        eos_token='</s>', pad_token='<pad>',
        additional_special_tokens=['<image>'])
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, image_size=SIDE, patch_size=14,
            projection_dim=32),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids('<image>'),
        image_seq_length=4,
        vision_feature_select_strategy='default',
        vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    # greedy decoding never picks a special token (logit 0 against the
    # random ones), so every caption has max_new_tokens real tokens
    with torch.no_grad():
        ids = tokenizer.convert_tokens_to_ids(SPECIALS)
        model.get_output_embeddings().weight[ids] = 0
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={'shortest_edge': SIDE},
            crop_size={'height': SIDE, 'width': SIDE}),
        tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy='default',
        num_additional_image_tokens=1, chat_template=gd.LLAVA_CHAT_TEMPLATE)
    return model, processor


def build_tiny_vlm(out_dir: str) -> str:
    """:func:`build_tiny_llava`, saved to ``out_dir`` (loadable by name)."""
    model, processor = build_tiny_llava()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope='module')
def tiny_vlm(tmp_path_factory):
    return build_tiny_vlm(str(tmp_path_factory.mktemp('tiny_vlm')))


def _seen_pixels(captioner, image, prompt='Describe.'):
    """The pixels that reach the vision tower's patch embedding (the first
    3-channel convolution of the model), as RGB in [0, 1]: ``[3, S, S]``.
    """
    seen = {}

    def hook(module, args):
        seen.setdefault('pixels', args[0].detach().clone())

    patch_embed = next(
        m for m in captioner.model.modules()
        if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3)
    handle = patch_embed.register_forward_pre_hook(hook)
    try:
        captioner([image], [prompt])
    finally:
        handle.remove()
    ip = captioner.processor.image_processor
    mean = torch.tensor(ip.image_mean).view(3, 1, 1)
    std = torch.tensor(ip.image_std).view(3, 1, 1)
    return seen['pixels'][0].float() * std + mean


def test_whole_person_reaches_the_model(tiny_vlm):
    """A 2:1 pedestrian image with a red head band and blue feet band: with
    the default padding both reach the model; the processor's own centre
    crop (``--image-fit crop``) keeps only the middle half."""
    h, w = 4 * SIDE, 2 * SIDE
    img = np.full((h, w, 3), (0, 200, 0), np.uint8)  # green body
    img[:h // 8] = (255, 0, 0)  # head
    img[-h // 8:] = (0, 0, 255)  # feet
    image = Image.fromarray(img)

    def colour_rows(pixels, colour):
        target = torch.tensor(colour, dtype=torch.float).view(3, 1) / 255
        centre = pixels[:, :, SIDE // 2]  # the middle column, [3, S]
        return [
            int(r) for r in torch.nonzero(
                (centre - target).abs().max(0).values < 0.15).flatten()
        ]

    padded = _seen_pixels(gd.VLMCaptioner(tiny_vlm, device='cpu'), image)
    assert padded.shape == (3, SIDE, SIDE)
    red, blue = colour_rows(padded, (255, 0, 0)), colour_rows(
        padded, (0, 0, 255))
    assert red and min(red) <= 1  # the head at the top
    assert blue and max(blue) >= SIDE - 2  # the feet at the bottom
    # left and right of the person: the processor's mean colour (LLaVA-1.5
    # pads with it), i.e. 0 after normalisation
    mean = torch.tensor(tiny_processor_mean(tiny_vlm))
    assert torch.allclose(padded[:, SIDE // 2, 0], mean, atol=0.02)

    cropped = _seen_pixels(
        gd.VLMCaptioner(tiny_vlm, device='cpu', image_fit='crop'), image)
    assert not colour_rows(cropped, (255, 0, 0))
    assert not colour_rows(cropped, (0, 0, 255))


def tiny_processor_mean(model_dir):
    processor = transformers.AutoProcessor.from_pretrained(model_dir)
    return [round(m * 255) / 255 for m in processor.image_processor.image_mean]


def test_captioner_uses_the_chat_template_batched(tiny_vlm):
    captioner = gd.VLMCaptioner(tiny_vlm, device='cpu', max_new_tokens=5)
    assert captioner.dtype == torch.float32  # on the CPU
    assert captioner.render_prompt('Describe.') == \
        'USER: <image>\nDescribe. ASSISTANT:'
    images = [Image.new('RGB', (20, 40), (9, 9, 9))] * 2
    # prompts of different lengths in one batch: padded on the left, so
    # each answer starts right after its prompt; the same answer as alone
    together = captioner(images, [gd.VIS_PROMPT, 'Describe.'])
    alone = captioner(images[:1], [gd.VIS_PROMPT])
    assert together[0] == alone[0] and all(t.strip() for t in together)
    with pytest.raises(ValueError, match='must contain "{prompt}"'):
        gd.VLMCaptioner(tiny_vlm, device='cpu', prompt_format='USER:')


def test_from_model_describes_as_loading_by_name(tiny_vlm):
    """A model built in memory, wrapped with ``from_model``, gives the same
    descriptions as the same model saved and loaded by its folder, with
    the default options and with every option changed; the options are
    checked as ``__init__`` checks them."""
    images = [
        Image.fromarray(
            np.random.default_rng(seed).integers(
                0, 256, (40, 20, 3), dtype=np.uint8)) for seed in range(3)
    ]
    prompts = [gd.VIS_PROMPT, gd.IR_PROMPT, 'Describe.']
    variants = [
        dict(max_new_tokens=6),
        dict(
            max_new_tokens=4, image_fit='crop', prompt_format=gd.LLAVA_FORMAT),
    ]
    for options in variants:
        by_name = gd.VLMCaptioner(tiny_vlm, device='cpu', **options)
        model, processor = build_tiny_llava()
        model.train()  # as built; from_model puts it in eval mode
        wrapped = gd.VLMCaptioner.from_model(
            model, processor, device='cpu', **options)
        assert wrapped.model is model and not model.training
        assert wrapped.dtype == by_name.dtype == torch.float32
        assert processor.tokenizer.padding_side == 'left'
        assert wrapped.render_prompt('Describe.') == \
            by_name.render_prompt('Describe.')
        expected = by_name(images, prompts)
        # the zeroed special tokens: every caption is max_new_tokens long
        assert all(text.strip() for text in expected)
        assert wrapped(images, prompts) == expected
    # image_fit reaches the model: padding instead of cropping (the chat
    # template renders as LLAVA_FORMAT) changes the descriptions, so the
    # comparison above would see an option that from_model dropped
    assert expected != gd.VLMCaptioner.from_model(
        model, processor, device='cpu', max_new_tokens=4)(images, prompts)

    with pytest.raises(ValueError, match="image_fit must be one of"):
        gd.VLMCaptioner.from_model(model, processor, image_fit='stretch')
    with pytest.raises(ValueError, match='must contain "{prompt}"'):
        gd.VLMCaptioner.from_model(model, processor, prompt_format='USER:')
    processor.chat_template = None
    with pytest.raises(ValueError, match='has no chat template'):
        gd.VLMCaptioner.from_model(model, processor, device='cpu')
    # with a prompt format no chat template is needed
    formatted = gd.VLMCaptioner.from_model(
        model, processor, device='cpu', **variants[-1])
    assert formatted(images, prompts) == expected


def test_end_to_end_into_training(tiny_vlm, tmp_path):
    """The real tool on the tiny VLM writes every train text; --check is
    OK; tools/train.py configs/eees_toy.py trains one iteration of each
    stage on them (the descriptions are encoded on entering finetune)."""
    from toy_utils import make_toy_dataset
    root = make_toy_dataset('sysu', tmp_path / 'toy', num_ids=8,
                            imgs_per_cam=1)
    os.remove(osp.join(root, 'descriptions.json'))
    summary = gd.main([
        TOY_CONFIG, '--data-root', root, '--backend', 'vlm', '--model',
        tiny_vlm, '--batch-size', '16', '--max-new-tokens', '8',
        '--no-progress'
    ])
    assert summary['remaining'] == 0 and summary['empty'] == 0
    report = gd.main([TOY_CONFIG, '--data-root', root, '--check'])
    assert report['ok'] and report['ir']['colour_texts'] == 0
    train_set = SYSUMM01Dataset(root)
    num_classes = len({
        train_set.get_data_info(i)['gt_label'] for i in range(len(train_set))
    })
    work_dir = str(tmp_path / 'work')
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), TOY_CONFIG, '--work-dir',
        work_dir, '--no-validate', '--cfg-options'
    ] + [
        # --no-validate drops val_dataloader
        f'{loader}.dataset.data_root={root}/'
        for loader in ('train_dataloader', 'test_dataloader')
    ] + [
        f'model.num_classes={num_classes}', 'train_cfg.max_iters_per_epoch=1',
        'train_cfg.stages.0.epochs=1', 'train_cfg.stages.1.epochs=1',
        'default_hooks.logger.interval=1',
        # the tests' 3-step toy CLIP can overflow the WRT triplet's soft
        # margin (inf) on its first step; that term is not under test here
        'default_hooks.runtime_info.nonfinite_loss=skip'
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'EEES: encoding' in out
    # the finetune step logged finite EEES terms on the VLM's texts
    line = next(ln for ln in out.splitlines() if 'loss_cmsp' in ln)
    for term in ('loss_ese', 'loss_cvsc', 'loss_cmsp'):
        value = float(line.split(f'{term}: ')[1].split()[0])
        assert np.isfinite(value), line
