"""Prefix tuning (Li & Liang 2021): learned keys and values in front of every attention layer's own.

The prefix is an input of ``MultiHeadAttention`` (not a faked KV cache): the backbone asks its
``prefix`` attachment for every layer's (keys, values) each forward pass, and the attention puts them
after its cache, so cached decoding works unchanged. The prefixes have no position.

Optimising the prefixes directly is unstable, so while training they come out of an MLP from a small
table of learned inputs (``reparameterize``); ``fold`` then stores the MLP's output as a plain table
for inference. The prefixes add keys, so they cannot be merged into the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmforge.peft.base import (
    MethodModule,
    MethodSettings,
    TuningMethod,
    check_bool,
    check_positive_int,
    transformer_blocks,
)


@dataclass(frozen=True)
class PrefixSettings(MethodSettings):
    n_prefix_tokens: int = 16
    reparameterize: bool = True
    hidden: int = 512

    def validate(self) -> None:
        super().validate()
        check_positive_int("n_prefix_tokens", self.n_prefix_tokens)
        check_bool("reparameterize", self.reparameterize)
        check_positive_int("hidden", self.hidden)


class Prefix(MethodModule):
    """Per-layer prefixes from a ``table`` of shape (layers, 2, kv_heads, n_tokens, head_dim)."""

    def table(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (keys, values), each (1, kv_heads, n_tokens, head_dim)."""
        return [(layer[0][None], layer[1][None]) for layer in self.table()]


class PrefixTable(Prefix):
    """The prefixes as one learned tensor."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.prefixes = nn.Parameter(table)

    def table(self) -> torch.Tensor:
        return self.prefixes


class PrefixEncoder(Prefix):
    """The prefixes as ``MLP(inputs)``: (n_tokens, d_model) -> tanh MLP -> every layer's keys and values."""

    def __init__(self, n_layers: int, kv_heads: int, n_tokens: int, head_dim: int, d_model: int, hidden: int):
        super().__init__()
        self.shape = (n_tokens, n_layers, 2, kv_heads, head_dim)
        self.inputs = nn.Parameter(torch.randn(n_tokens, d_model))
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, n_layers * 2 * kv_heads * head_dim)
        )

    def table(self) -> torch.Tensor:
        return self.mlp(self.inputs).view(self.shape).permute(1, 2, 3, 0, 4)


class PrefixTuning(TuningMethod):
    name = "prefix"
    settings_type = PrefixSettings
    not_mergeable_because = "its prefixes add keys and values to every attention layer"

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        blocks = transformer_blocks(backbone)
        attention = blocks[0].attention
        weight = attention.out.weight  # the width, device and dtype
        n_tokens, kv_heads, head_dim = self.settings.n_prefix_tokens, attention.n_kv_heads, attention.head_dim
        if self.settings.reparameterize:
            prefix = PrefixEncoder(
                len(blocks), kv_heads, n_tokens, head_dim, weight.shape[0], self.settings.hidden
            )
        else:  # at the scale of the backbone's initial weights
            table = torch.randn(len(blocks), 2, kv_heads, n_tokens, head_dim) * backbone.config.init_std
            prefix = PrefixTable(table)
        backbone.prefix = prefix.to(weight)

    def fold(self) -> None:
        """Replace the MLP by the prefixes it gives now (for inference; idempotent)."""
        backbone = self.applied_backbone()
        if isinstance(backbone.prefix, PrefixEncoder):
            with torch.no_grad():
                backbone.prefix = PrefixTable(backbone.prefix.table().contiguous())
