"""Decoders (GPT-2, LLaMA): causality, initialisation, weight tying and their shape checks."""

import math

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.models import DecoderModel, GPTConfig, LlamaConfig
from tests.support.decoders import SHAPE, builders, gpt, llama

BUILDERS = builders()


@pytest.mark.parametrize("build", BUILDERS)
def test_changing_a_future_token_never_changes_earlier_logits(build):
    model = build()
    ids = torch.randint(0, 97, (2, 20))
    changed = ids.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 97
    before, after = model.logits(model(ids)), model.logits(model(changed))
    torch.testing.assert_close(before[:, :12], after[:, :12], atol=0, rtol=0)
    assert not torch.allclose(before[:, 12:], after[:, 12:])


def test_gpt_residual_projections_start_smaller():
    model = DecoderModel(GPTConfig(**{**SHAPE, "d_model": 256, "d_ff": 1024, "n_layers": 8}))
    expected = 0.02 / math.sqrt(2 * 8)
    for block in model.blocks:
        assert block.attention.out.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.feed_forward.down.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.attention.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_gpt_ties_its_head_and_llama_does_not():
    assert gpt().lm_head is None
    model = llama()
    assert model.lm_head is not None and model.lm_head.weight is not model.tokens.weight
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_a_bad_group_size_is_refused_with_the_divisors():
    with pytest.raises(ConfigError, match=r"model.n_kv_heads=3 must divide model.n_heads=4.*1, 2, 4"):
        LlamaConfig(**SHAPE, n_kv_heads=3)
