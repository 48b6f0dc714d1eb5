# Copyright (c) mmvireid contributors. All rights reserved.
"""Tests of the frozen CLIP text encoder and the ID prompt learner."""
import pytest
import torch
import torch.nn as nn

from mmvireid.models.text import CLIPTextEncoder, IDPromptLearner
from mmvireid.models.utils import build_open_clip
from mmvireid.registry import MODELS

VIT = dict(
    embed_dim=48,
    vision_cfg=dict(
        image_size=(128, 64), patch_size=16, width=64, layers=2,
        head_width=32),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
SOT, EOT = 49406, 49407


@pytest.fixture(scope='module')
def clip_and_encoder(tmp_path_factory):
    """A random CLIP and a text encoder loaded from its checkpoint."""
    torch.manual_seed(0)
    clip = build_open_clip(VIT).eval()
    path = tmp_path_factory.mktemp('clip') / 'clip.pth'
    torch.save(clip.state_dict(), path)
    encoder = CLIPTextEncoder(VIT, pretrained=str(path))
    encoder.init_weights()
    return clip, encoder


def reference_prompt_features(clip, tokens, ctx, ctx_start):
    """CLIP-ReID-style prompt features written against the open_clip model:
    prefix embeddings + learnt context + suffix embeddings, then the text
    transformer and the projection at the EOT position."""
    with torch.no_grad():
        embeds = clip.token_embedding(tokens)
    num_ctx = ctx.shape[1]
    x = torch.cat(
        [embeds[:, :ctx_start], ctx, embeds[:, ctx_start + num_ctx:]], dim=1)
    x = x + clip.positional_embedding
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    eot = tokens.argmax(dim=-1)
    return x[torch.arange(x.shape[0]), eot] @ clip.text_projection


def test_text_encoder_properties_and_frozen(clip_and_encoder):
    _, encoder = clip_and_encoder
    assert (encoder.width, encoder.embed_dim,
            encoder.context_length) == (64, 48, 77)
    assert not any(p.requires_grad for p in encoder.parameters())
    nn.Sequential(encoder).train()
    assert not encoder.training and not encoder.transformer.training
    # Only the text part of the checkpoint is kept.
    assert not any(
        k.startswith(('visual', 'logit')) for k in encoder.state_dict())
    assert 'attn_mask' not in encoder.state_dict()


def test_tokenize_offline(clip_and_encoder):
    _, encoder = clip_and_encoder
    tokens = encoder.tokenize(['A photo of a person.', 'a man'])
    assert tokens.dtype == torch.long and tokens.shape == (2, 77)
    assert tokens[:, 0].tolist() == [SOT, SOT]
    # "a photo of a person ." -> 6 tokens, so EOT sits at index 7.
    assert tokens.argmax(dim=-1).tolist() == [7, 3]
    assert tokens[0, 7] == EOT and tokens[0, 8:].eq(0).all()
    # Too long texts are truncated and keep their EOT.
    long = encoder.tokenize('a ' * 200)
    assert long.shape == (1, 77) and long[0, -1] == EOT


def test_encode_tokens_equals_open_clip(clip_and_encoder):
    clip, encoder = clip_and_encoder
    tokens = encoder.tokenize(
        ['A photo of a person.', 'a woman in a red coat', 'x'])
    with torch.no_grad():
        expected = clip.encode_text(tokens)
    out = encoder.encode_tokens(tokens)
    assert out.shape == (3, 48)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(encoder.encode_texts(['x']), expected[2:])


def test_forward_embeddings_causal_prefix(clip_and_encoder):
    # The mask is causal, so cutting the sequence after EOT changes nothing.
    _, encoder = clip_and_encoder
    tokens = encoder.tokenize(['a man with a bag', 'a woman'])
    full = encoder.encode_tokens(tokens)
    short = tokens[:, :8]
    torch.testing.assert_close(
        encoder.forward_embeddings(encoder.token_embedding(short), short),
        full)
    with pytest.raises(ValueError, match='disagree on'):
        encoder.forward_embeddings(encoder.token_embedding(short), tokens)


def test_gradients_flow_through_frozen_encoder(clip_and_encoder):
    _, encoder = clip_and_encoder
    tokens = encoder.tokenize(['a person'])
    embeds = encoder.token_embedding(tokens).clone().requires_grad_(True)
    encoder.forward_embeddings(embeds, tokens).sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    # EOT of "a person" is at 3; later positions cannot influence it.
    assert embeds.grad[0, 4:].abs().sum() == 0
    assert all(p.grad is None for p in encoder.parameters())


def test_prompt_learner_template_positions():
    learner = IDPromptLearner(num_classes=5, embed_width=64)
    # SOT + "a photo of a" = 5 tokens, then the four X.
    assert learner.ctx_positions.tolist() == [5, 6, 7, 8]
    assert learner.template_tokens.shape == (1, 77)
    assert learner.cls_ctx.shape == (5, 4, 64)
    assert 0.015 < learner.cls_ctx.std().item() < 0.025
    assert 'template_tokens' not in learner.state_dict()

    custom = IDPromptLearner(
        num_classes=2,
        embed_width=64,
        template='An infrared photo of a Z Z person.',
        placeholder='Z',
        num_ctx=2)
    assert custom.ctx_positions.tolist() == [6, 7]

    with pytest.raises(ValueError, match="contains 3 placeholder tokens 'X'"):
        IDPromptLearner(5, 64, template='A photo of a X X X person.')
    with pytest.raises(ValueError, match='must be a single token'):
        IDPromptLearner(5, 64, placeholder='zzzqqqxyz')


def test_prompt_learner_matches_reference(clip_and_encoder):
    clip, encoder = clip_and_encoder
    torch.manual_seed(1)
    learner = IDPromptLearner(num_classes=6, embed_width=64)
    labels = torch.tensor([4, 0, 4])
    out = learner(labels, encoder)
    assert out.shape == (3, 48)
    tokens = learner.template_tokens.expand(3, -1)
    with torch.no_grad():
        expected = reference_prompt_features(clip, tokens,
                                             learner.cls_ctx[labels], 5)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out[0], out[2])


def test_prompt_learner_depends_only_on_own_ctx(clip_and_encoder):
    _, encoder = clip_and_encoder
    torch.manual_seed(2)
    learner = IDPromptLearner(num_classes=6, embed_width=64)
    labels = torch.tensor([1, 3, 3])
    out = learner(labels, encoder)
    out.pow(2).sum().backward()
    grad_rows = learner.cls_ctx.grad.abs().sum(dim=(1, 2))
    assert torch.nonzero(grad_rows).squeeze(1).tolist() == [1, 3]
    assert all(p.grad is None for p in encoder.parameters())

    with torch.no_grad():
        before = learner(torch.tensor([1]), encoder)
        # (Random shifts: a constant shift over the channels would mostly
        # be removed by the LayerNorms.)
        learner.cls_ctx[[0, 2, 3, 4, 5]] += torch.randn(5, 4, 64)
        torch.testing.assert_close(learner(torch.tensor([1]), encoder), before)
        learner.cls_ctx[1] += torch.randn(4, 64)
        assert not torch.allclose(
            learner(torch.tensor([1]), encoder), before, atol=1e-4)


def test_all_class_features(clip_and_encoder):
    _, encoder = clip_and_encoder
    learner = IDPromptLearner(num_classes=7, embed_width=64)
    bank = learner.all_class_features(encoder, batch_size=3)
    assert bank.shape == (7, 48) and not bank.requires_grad
    with torch.no_grad():
        for label in range(7):
            torch.testing.assert_close(
                bank[label],
                learner(torch.tensor([label]), encoder)[0])


def test_two_modality_learners_are_independent(clip_and_encoder):
    # CSDN: one learner per modality with the same template.
    _, encoder = clip_and_encoder
    vis = IDPromptLearner(num_classes=4, embed_width=64)
    ir = IDPromptLearner(num_classes=4, embed_width=64)
    labels = torch.tensor([0, 2])
    (vis(labels, encoder).sum() + 0 * ir.cls_ctx.sum()).backward()
    assert vis.cls_ctx.grad.abs().sum() > 0
    assert ir.cls_ctx.grad.abs().sum() == 0


def test_prompt_learner_width_check(clip_and_encoder):
    _, encoder = clip_and_encoder
    learner = IDPromptLearner(num_classes=3, embed_width=512)
    with pytest.raises(ValueError, match='set embed_width=64'):
        learner(torch.tensor([0]), encoder)
    with pytest.raises(TypeError, match='CLIPTextEncoder-like'):
        learner(torch.tensor([0]), nn.Linear(2, 2))


def test_registry_build_and_text_pretrained_strict(tmp_path):
    learner = MODELS.build(
        dict(type='IDPromptLearner', num_classes=3, embed_width=64))
    assert isinstance(learner, IDPromptLearner)
    encoder = MODELS.build(dict(type='CLIPTextEncoder', arch=VIT))
    assert isinstance(encoder, CLIPTextEncoder)
    # A checkpoint with another context length is a reported mismatch.
    other = dict(VIT, text_cfg=dict(VIT['text_cfg'], context_length=32))
    torch.save(build_open_clip(other).state_dict(), tmp_path / 'ctx32.pth')
    encoder = CLIPTextEncoder(VIT, pretrained=str(tmp_path / 'ctx32.pth'))
    with pytest.raises(
            RuntimeError,
            match=r'positional_embedding: checkpoint \(32, 64\)'):
        encoder.init_weights()


def _prompt_features_and_grads(encoder, truncate):
    torch.manual_seed(3)
    learner = IDPromptLearner(
        num_classes=5, embed_width=64, truncate_after_eot=truncate)
    labels = torch.tensor([0, 3, 3, 4])
    feats = learner(labels, encoder)
    (feats * torch.linspace(-1, 1, feats.shape[1])).sum().backward()
    return learner, feats.detach(), learner.cls_ctx.grad.clone()


def test_prompt_truncated_after_eot_equals_full_context(clip_and_encoder,
                                                        monkeypatch):
    """Dropping the positions after EOT changes nothing but rounding: the
    causal mask hides them from the EOT output that CLIP pools."""
    _, encoder = clip_and_encoder
    lengths = []
    forward = encoder.forward_embeddings

    def spy(embeds, tokens):
        lengths.append(embeds.shape[1])
        return forward(embeds, tokens)

    monkeypatch.setattr(encoder, 'forward_embeddings', spy)
    learner, short, short_grad = _prompt_features_and_grads(encoder, True)
    _, full, full_grad = _prompt_features_and_grads(encoder, False)
    # 'A photo of a X X X X person.' = SOT + 10 tokens + EOT
    assert learner.num_prompt_tokens == 12
    assert lengths == [12, 77]
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)
    # gradients agree to float32 rounding of their own scale
    scale = full_grad.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(
        short_grad, full_grad, rtol=0, atol=1e-5 * scale)


def test_encode_texts_truncates_on_the_host(clip_and_encoder, monkeypatch):
    clip, encoder = clip_and_encoder
    texts = ['a person in a red coat', 'a tall person with a black backpack']
    seen = []
    encode = encoder.encode_tokens
    monkeypatch.setattr(encoder, 'encode_tokens',
                        lambda tokens: seen.append(tokens.shape) or
                        encode(tokens))
    feats = encoder.encode_texts(texts)
    tokens = encoder.tokenize(texts)
    with torch.no_grad():
        expected = clip.encode_text(tokens)
    # the longer text ends at its EOT: 1 + 8 words + EOT = 10 tokens
    assert seen == [torch.Size([2, int(tokens.argmax(-1).max()) + 1])]
    assert seen[0][1] < 77
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-6)


def test_no_truncation_without_causal_mask_or_eot_pooling(clip_and_encoder):
    _, encoder = clip_and_encoder
    assert encoder.truncates_after_eot
    pool_type = encoder.pool_type
    try:
        encoder.pool_type = 'first'
        assert not encoder.truncates_after_eot
    finally:
        encoder.pool_type = pool_type
    encoder.truncate_after_eot = False
    try:
        assert not encoder.truncates_after_eot
    finally:
        encoder.truncate_after_eot = True
