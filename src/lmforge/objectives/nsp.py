"""Next-sentence-prediction head: a tanh pooler on the [CLS] state and a two-way classifier."""

from __future__ import annotations

import torch
from torch import nn

IS_NEXT, NOT_NEXT = 0, 1  # label convention of the original BERT and of Hugging Face


class NextSentenceHead(nn.Module):
    def __init__(self, d_model: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.pooler = nn.Linear(d_model, d_model)
        self.classifier = nn.Linear(d_model, 2)
        for layer in (self.pooler, self.classifier):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits (batch, 2) from the hidden state of the first token ([CLS])."""
        return self.classifier(torch.tanh(self.pooler(hidden[:, 0])))
