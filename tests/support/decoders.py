"""The tiny GPT and LLaMA decoders of the model unit tests, seeded, in eval mode."""

from functools import partial
from typing import Any

import pytest
import torch

from lmforge.models import DecoderModel, GPTConfig, LlamaConfig

SHAPE = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_seq_len": 64}


def gpt(**settings: Any) -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(GPTConfig(**{**SHAPE, **settings}, dropout=0.0, attention_dropout=0.0)).eval()


def llama(**settings: Any) -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(LlamaConfig(**{**SHAPE, **settings}, n_kv_heads=2)).eval()


def builders(**settings: Any) -> list:
    """``gpt`` and ``llama`` with ``settings`` on top of ``SHAPE``, as parameters of a test."""
    return [
        pytest.param(partial(gpt, **settings), id="gpt"),
        pytest.param(partial(llama, **settings), id="llama"),
    ]
