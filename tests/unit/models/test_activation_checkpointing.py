"""model.activation_checkpointing recomputes each block in the backward pass: the same gradients."""

import pytest
import torch

from lmforge.models import BertConfig, GPTConfig, LlamaConfig, build_backbone

SMALL = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_seq_len": 32}
CONFIGS = {
    "bert": lambda **kw: BertConfig(**SMALL, **kw),
    "gpt": lambda **kw: GPTConfig(**SMALL, **kw),
    "llama": lambda **kw: LlamaConfig(**{**SMALL, "n_kv_heads": 1}, **kw),
}


def gradients(backbone: torch.nn.Module, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    backbone.train()
    torch.manual_seed(7)  # the same dropout masks in both runs (checkpointing replays them)
    backbone(tokens).float().pow(2).mean().backward()
    return {name: p.grad.clone() for name, p in backbone.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", CONFIGS)
def test_checkpointed_blocks_give_the_gradients_of_plain_ones(family):
    torch.manual_seed(0)
    plain = build_backbone(CONFIGS[family](dropout=0.1, attention_dropout=0.1))
    checkpointed = build_backbone(
        CONFIGS[family](dropout=0.1, attention_dropout=0.1, activation_checkpointing=True)
    )
    checkpointed.load_state_dict(plain.state_dict())
    assert all(block.activation_checkpointing for block in checkpointed.blocks)
    first, calls = checkpointed.blocks[0], []
    layers = first._layers
    first._layers = lambda *args, **kwargs: calls.append(1) or layers(*args, **kwargs)
    tokens = torch.randint(1, 97, (3, 16))
    expected, got = gradients(plain, tokens), gradients(checkpointed, tokens)
    assert len(calls) == 2  # the forward, then its recomputation in the backward pass
    assert expected.keys() == got.keys() and len(got) > 10
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_checkpointing_is_off_in_evaluation_and_without_gradients():
    backbone = build_backbone(GPTConfig(**SMALL, activation_checkpointing=True)).eval()
    tokens = torch.randint(1, 97, (2, 8))
    with torch.no_grad():
        assert backbone(tokens).shape[:2] == (2, 8)
