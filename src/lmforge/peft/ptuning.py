"""P-tuning (Liu et al. 2021, "GPT Understands, Too"): virtual tokens produced by a small prompt encoder
(an MLP, or a bidirectional LSTM then an MLP) from learned inputs, trained end to end.

The encoder couples the virtual tokens, which optimises more steadily than free embeddings; once
trained, only its output matters, so ``fold`` replaces it by that output as a plain ``SoftPrompt``
(the same forward pass, minus the encoder's cost). Attached as the backbone's ``prompt``, like prompt
tuning; it lengthens the input, so it cannot be merged into the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmforge.peft.base import MethodModule, MethodSettings, TuningMethod, check_choice, check_positive_int
from lmforge.peft.prompt import SoftPrompt

ENCODERS = ("mlp", "lstm")


@dataclass(frozen=True)
class PTuningSettings(MethodSettings):
    n_virtual_tokens: int = 20
    encoder: str = "mlp"
    hidden: int = 128

    def validate(self) -> None:
        super().validate()
        check_positive_int("n_virtual_tokens", self.n_virtual_tokens)
        check_choice("encoder", self.encoder, ENCODERS)
        check_positive_int("hidden", self.hidden)


class PromptEncoder(MethodModule):
    """Learned inputs (n_tokens, d_model) -> [bidirectional LSTM] -> MLP -> virtual-token embeddings."""

    def __init__(self, n_tokens: int, d_model: int, hidden: int, encoder: str) -> None:
        super().__init__()
        self.inputs = nn.Parameter(torch.randn(n_tokens, d_model))
        lstm = encoder == "lstm"
        self.lstm = nn.LSTM(d_model, hidden, bidirectional=True, batch_first=True) if lstm else None
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden if lstm else d_model, hidden), nn.ReLU(), nn.Linear(hidden, d_model)
        )

    @property
    def n_tokens(self) -> int:
        return self.inputs.shape[0]

    def forward(self) -> torch.Tensor:
        h = self.inputs if self.lstm is None else self.lstm(self.inputs[None])[0][0]
        return self.mlp(h)


class PTuning(TuningMethod):
    name = "ptuning"
    settings_type = PTuningSettings
    not_mergeable_because = "its virtual tokens lengthen the input (fold() drops the prompt encoder)"

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        table = backbone.token_embedding.weight
        settings = self.settings
        encoder = PromptEncoder(settings.n_virtual_tokens, table.shape[1], settings.hidden, settings.encoder)
        backbone.prompt = encoder.to(table)

    def fold(self) -> None:
        """Replace the prompt encoder by the embeddings it gives now (for inference; idempotent)."""
        backbone = self.applied_backbone()
        if isinstance(backbone.prompt, PromptEncoder):
            with torch.no_grad():
                backbone.prompt = SoftPrompt(backbone.prompt())
