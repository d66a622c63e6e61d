"""The BERT backbone and its heads: shapes, norm placement, padding, weight tying, validation."""

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.models import BertConfig, BertModel, build_backbone
from lmforge.objectives import MaskedLMHead, NextSentenceHead


def tiny(**overrides) -> BertConfig:
    settings = dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=20, dropout=0.0)
    settings.update(overrides)
    return BertConfig(**{**settings, "attention_dropout": settings["dropout"]})


def test_hidden_states_have_one_vector_per_token():
    model = BertModel(tiny()).eval()
    ids = torch.randint(5, 50, (3, 11))
    assert model(ids, torch.zeros_like(ids), torch.ones_like(ids)).shape == (3, 11, 16)


@pytest.mark.parametrize("norm_position", ["post", "pre"])
@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_padding_does_not_change_real_positions(norm_position, position):
    torch.manual_seed(0)
    model = BertModel(tiny(norm_position=norm_position, position=position)).eval()
    ids = torch.randint(5, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], dim=1).long()
    short = model(ids, attention_mask=torch.ones_like(ids))
    long = model(padded, attention_mask=mask)[:, :6]
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)


def test_pre_and_post_norm_differ_in_structure_and_output():
    torch.manual_seed(0)
    post = BertModel(tiny(norm_position="post"))
    torch.manual_seed(0)
    pre = BertModel(tiny(norm_position="pre"))
    assert isinstance(post.final_norm, torch.nn.Identity)
    assert isinstance(pre.final_norm, torch.nn.LayerNorm)
    ids = torch.randint(5, 50, (2, 5))
    assert not torch.allclose(post.eval()(ids), pre.eval()(ids))
    # Post-LN ends every block with a LayerNorm: each position has zero mean, unit variance.
    out = post(ids)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_segment_ids_change_the_output():
    model = BertModel(tiny()).eval()
    ids = torch.randint(5, 50, (1, 6))
    assert not torch.allclose(model(ids, torch.zeros_like(ids)), model(ids, torch.ones_like(ids)))


def test_mlm_head_is_tied_to_the_token_embedding():
    model = BertModel(tiny())
    head = MaskedLMHead(16, 50)
    hidden = model(torch.randint(5, 50, (2, 4)))
    logits = head(hidden, model.token_embedding.weight)
    assert logits.shape == (2, 4, 50)
    logits.sum().backward()
    assert model.token_embedding.weight.grad is not None
    assert not any("decoder" in name for name, _ in head.named_parameters())


def test_nsp_head_reads_the_first_token():
    head = NextSentenceHead(16)
    hidden = torch.randn(3, 5, 16)
    changed = hidden.clone()
    changed[:, 1:] = 0
    torch.testing.assert_close(head(hidden), head(changed))
    assert head(hidden).shape == (3, 2)


def test_padding_row_starts_at_zero_and_init_is_small():
    model = BertModel(tiny(init_std=0.02))
    assert model.token_embedding.weight[0].abs().sum() == 0
    assert model.blocks[0].attention.qkv.weight.std().item() == pytest.approx(0.02, rel=0.3)


def test_build_backbone_matches_config_type():
    assert isinstance(build_backbone(tiny()), BertModel)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"n_heads": 5}, "model.n_heads"),
        ({"d_model": 0}, "model.d_model"),
        ({"dropout": 1.5}, "model.dropout"),
        ({"position": "rotary"}, "model.position"),
        ({"norm_position": "middle"}, "model.norm_position"),
        ({"activation": "swish"}, "model.activation"),
        ({"pad_token_id": 99}, "model.pad_token_id"),
    ],
)
def test_bad_shapes_are_refused_with_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        tiny(**overrides)
    assert error.value.key == key
    assert key in str(error.value)


def test_head_count_error_suggests_divisors():
    with pytest.raises(ConfigError, match=r"model.n_heads=5 does not divide model.d_model=128.*1, 2, 4, 8"):
        BertConfig(d_model=128, n_heads=5)
