"""Masked-language-model head: transform, then a vocabulary projection tied to the token embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # label of positions that are not predicted (PyTorch's cross-entropy default)


class MaskedLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> logits = h @ E^T + b, with E the token embedding matrix.

    The decoder weight is passed in rather than stored, so the tie lives in one place (the backbone)
    and the state dict holds the matrix once.
    """

    def __init__(self, d_model: int, vocab_size: int, norm_eps: float = 1e-12, init_std: float = 0.02):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.normal_(self.dense.weight, std=init_std)
        nn.init.zeros_(self.dense.bias)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The states that the vocabulary projection reads (training feeds them to
        ``linear_cross_entropy`` with ``decoder_weight`` and ``bias`` instead of making logits)."""
        return self.norm(self.act(self.dense(hidden)))

    def forward(self, hidden: torch.Tensor, decoder_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), decoder_weight, self.bias)
