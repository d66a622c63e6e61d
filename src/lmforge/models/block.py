"""One Transformer layer: attention and feed-forward sublayers, each with a residual and a norm."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NORM_POSITIONS = ("post", "pre")


class TransformerBlock(nn.Module):
    """Composes given sublayers; the norm placement decides the architecture.

    ``post`` (BERT, the original Transformer): ``x = norm(x + sublayer(x))``.
    ``pre`` (GPT-2 and later): ``x = x + sublayer(norm(x))``; the stack then needs a final norm.
    """

    def __init__(
        self,
        attention: nn.Module,
        feed_forward: nn.Module,
        attention_norm: nn.Module,
        feed_forward_norm: nn.Module,
        dropout: float = 0.0,
        norm_position: str = "post",
    ) -> None:
        super().__init__()
        if norm_position not in NORM_POSITIONS:
            raise ValueError(f"norm_position must be one of {NORM_POSITIONS}, got {norm_position!r}")
        self.attention = attention
        self.feed_forward = feed_forward
        self.attention_norm = attention_norm
        self.feed_forward_norm = feed_forward_norm
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = norm_position == "pre"

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **attention_options: Any
    ) -> torch.Tensor:
        """``attention_options`` go to the attention module (causality, rotary angles, a KV cache)."""
        if self.pre_norm:
            x = x + self.dropout(self.attention(self.attention_norm(x), attn_mask, **attention_options))
            return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        x = self.attention_norm(x + self.dropout(self.attention(x, attn_mask, **attention_options)))
        return self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))
