"""One Transformer layer: attention and feed-forward sublayers, each with a residual and a norm."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

NORM_POSITIONS = ("post", "pre")


class TransformerBlock(nn.Module):
    """Composes given sublayers; the norm placement decides the architecture.

    ``post`` (BERT, the original Transformer): ``x = norm(x + sublayer(x))``.
    ``pre`` (GPT-2 and later): ``x = x + sublayer(norm(x))``; the stack then needs a final norm.

    ``attention_adapter`` and ``feed_forward_adapter`` see each sublayer's output (after its dropout)
    before the residual sum: identities unless a tuning method puts bottleneck adapters there
    (Houlsby et al. 2019; ``lmforge.peft.adapter``). Being parameter-free, they leave the state dict as is.

    ``activation_checkpointing``: while training, keep only the block's input and recompute its
    activations in the backward pass (non-reentrant ``torch.utils.checkpoint``, dropout masks replayed):
    activation memory of one block instead of all, for about a third more compute.
    """

    def __init__(
        self,
        attention: nn.Module,
        feed_forward: nn.Module,
        attention_norm: nn.Module,
        feed_forward_norm: nn.Module,
        dropout: float = 0.0,
        norm_position: str = "post",
        activation_checkpointing: bool = False,
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
        self.activation_checkpointing = activation_checkpointing
        self.attention_adapter: nn.Module = nn.Identity()
        self.feed_forward_adapter: nn.Module = nn.Identity()

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **attention_options: Any
    ) -> torch.Tensor:
        """``attention_options`` go to the attention module (causality, rotary angles, a KV cache, a
        prefix)."""
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._layers, x, attn_mask, use_reentrant=False, **attention_options)
        return self._layers(x, attn_mask, **attention_options)

    def _layers(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **attention_options: Any
    ) -> torch.Tensor:
        if self.pre_norm:
            x = x + self._attend(self.attention_norm(x), attn_mask, attention_options)
            return x + self._transform(self.feed_forward_norm(x))
        x = self.attention_norm(x + self._attend(x, attn_mask, attention_options))
        return self.feed_forward_norm(x + self._transform(x))

    def _attend(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, attention_options: dict[str, Any]
    ) -> torch.Tensor:
        return self.attention_adapter(self.dropout(self.attention(x, attn_mask, **attention_options)))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward_adapter(self.dropout(self.feed_forward(x)))
