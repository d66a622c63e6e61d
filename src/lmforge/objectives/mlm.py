"""Masked-language-model head: transform, then a vocabulary projection (the token embedding, or its own)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.models.feedforward import ACTIVATIONS

IGNORE_INDEX = -100  # label of positions that are not predicted (PyTorch's cross-entropy default)


class MaskedLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> logits = h @ W^T + b.

    ``W`` is the token embedding matrix (``tied``, BERT's default): it is passed in rather than stored,
    so the tie lives in one place (the backbone) and the state dict holds the matrix once. An untied head
    (a Hugging Face BERT with ``tie_word_embeddings=false``) has a ``decoder`` of its own. The activation
    is the model's (``model.activation``): Hugging Face's BERT uses one ``hidden_act`` for both.
    """

    def __init__(
        self,
        d_model: int,
        vocab_size: int,
        norm_eps: float = 1e-12,
        init_std: float = 0.02,
        activation: str = "gelu",
        tied: bool = True,
    ):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.act = ACTIVATIONS[activation]()
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.decoder = None if tied else nn.Linear(d_model, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        for layer in (self.dense, self.decoder):
            if layer is not None:
                nn.init.normal_(layer.weight, std=init_std)
        nn.init.zeros_(self.dense.bias)

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The states that the vocabulary projection reads (training feeds them to
        ``linear_cross_entropy`` with ``decoder_weight`` and ``bias`` instead of making logits)."""
        return self.norm(self.act(self.dense(hidden)))

    def decoder_weight(self, embedding_weight: torch.Tensor) -> torch.Tensor:
        """The vocabulary projection: the token embedding given, or the head's own when untied."""
        return embedding_weight if self.decoder is None else self.decoder.weight

    def forward(self, hidden: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self.decoder_weight(embedding_weight), self.bias)
