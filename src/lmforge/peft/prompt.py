"""Prompt tuning (Lester et al. 2021): a few learned input embeddings, the "virtual tokens", put in front
of every input; the backbone itself stays frozen.

The soft prompt is attached as the backbone's ``prompt`` (see ``BertModel`` and ``DecoderModel`` for
positions, masks and the KV cache). Starting from real vocabulary embeddings (``init: vocab`` or
``text``) trains more steadily than from noise, as Lester et al. found. The virtual tokens change the
input itself, so they cannot be folded into the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmforge.errors import ConfigError
from lmforge.peft.base import MethodModule, MethodSettings, TuningMethod, check_choice, check_positive_int

INITS = ("random", "vocab", "text")


@dataclass(frozen=True)
class PromptSettings(MethodSettings):
    n_virtual_tokens: int = 20
    init: str = "vocab"
    init_text: str | None = None

    def validate(self) -> None:
        super().validate()
        check_positive_int("n_virtual_tokens", self.n_virtual_tokens)
        check_choice("init", self.init, INITS)
        if self.init == "text" and not (isinstance(self.init_text, str) and self.init_text.strip()):
            raise ConfigError("peft.init_text", "peft.init=text needs a text in peft.init_text")


class SoftPrompt(MethodModule):
    """``n_tokens`` learned embeddings: the backbone's ``prompt`` attachment, called once per forward."""

    def __init__(self, embeddings: torch.Tensor) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(embeddings)

    @property
    def n_tokens(self) -> int:
        return self.embeddings.shape[0]

    def forward(self) -> torch.Tensor:
        return self.embeddings


def text_token_ids(tokenizer: Any, text: str, n_tokens: int, vocab_size: int) -> torch.Tensor:
    """The ids of ``text`` (without special tokens), repeated or cut to ``n_tokens``."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if not ids:
        raise ConfigError("peft.init_text", f"peft.init_text={text!r} gives no tokens")
    if max(ids) >= vocab_size:
        raise ConfigError(
            "peft.init_text",
            f"the tokenizer gives ids up to {max(ids)} for peft.init_text, beyond the model's vocabulary "
            f"of {vocab_size}: pass the tokenizer the model was trained with",
        )
    return torch.as_tensor((ids * -(-n_tokens // len(ids)))[:n_tokens])


class PromptTuning(TuningMethod):
    name = "prompt"
    settings_type = PromptSettings
    not_mergeable_because = "its virtual tokens lengthen the input"

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        table = backbone.token_embedding.weight.detach()
        backbone.prompt = SoftPrompt(self._initial_embeddings(table, tokenizer))

    def _initial_embeddings(self, table: torch.Tensor, tokenizer: Any) -> torch.Tensor:
        """``random``: noise at the scale of the token embeddings; ``vocab``: copies of randomly drawn
        rows of the table; ``text``: the embeddings of ``init_text``'s tokens."""
        n = self.settings.n_virtual_tokens
        if self.settings.init == "random":
            return torch.randn(n, table.shape[1], device=table.device, dtype=table.dtype) * table.std()
        if self.settings.init == "vocab":
            return table[torch.randint(table.shape[0], (n,), device=table.device)].clone()
        if tokenizer is None:
            raise ConfigError(
                "peft.init",
                "peft.init=text reads peft.init_text with a tokenizer, and none was given to apply_peft: "
                "pass tokenizer=..., or set peft.init=vocab",
            )
        ids = text_token_ids(tokenizer, self.settings.init_text, n, table.shape[0])
        return table[ids.to(table.device)].clone()
