"""The classification task: a decoder classifies from the last real token of each row."""

from __future__ import annotations

import pytest
import torch

from lmforge.models import GPTConfig, LlamaConfig
from lmforge.tasks import SequenceClassification


@pytest.mark.parametrize("config_type", [GPTConfig, LlamaConfig])
def test_a_decoder_classifies_from_the_last_real_token_whatever_the_padding(config_type):
    model = {
        "_target_": f"lmforge.models.{config_type.__name__}",
        "vocab_size": 50,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "n_kv_heads": 1,
        "d_ff": 64,
        "max_seq_len": 32,
    }
    task = SequenceClassification(model, {"classifier_dropout": 0.0}, {"lr": 1e-3}, ["a", "b", "c"]).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    alone = task(ids, torch.ones_like(ids))
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    torch.testing.assert_close(task(padded, mask), alone)
    # and it reads the last token: changing it changes the prediction's logits
    assert not torch.allclose(task(torch.tensor([[5, 6, 7, 9]]), torch.ones_like(ids)), alone)
