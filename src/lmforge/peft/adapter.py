"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021).

A small residual MLP, ``x + up(act(down(x)))``, on a sublayer's output before the block's residual sum
(``TransformerBlock.attention_adapter`` / ``feed_forward_adapter``). The up-projection starts at zero,
so the adapted model starts as the base model. ``houlsby`` puts one after the attention and one after
the feed-forward sublayer, ``pfeiffer`` only the second (half the parameters, about the same scores).
Houlsby et al. also train the layer norms (``train_norms``).

The adapters compute a nonlinearity of their own, so they cannot be folded into the base weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmforge.models.feedforward import ACTIVATIONS
from lmforge.peft.base import (
    MethodModule,
    MethodSettings,
    TuningMethod,
    check_bool,
    check_choice,
    check_positive_int,
    transformer_blocks,
)

VARIANTS = ("houlsby", "pfeiffer")
NORMS = (nn.LayerNorm, nn.RMSNorm)


@dataclass(frozen=True)
class AdapterSettings(MethodSettings):
    variant: str = "houlsby"
    bottleneck: int = 64
    activation: str = "relu"
    train_norms: bool = True

    def validate(self) -> None:
        super().validate()
        check_choice("variant", self.variant, VARIANTS)
        check_positive_int("bottleneck", self.bottleneck)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_bool("train_norms", self.train_norms)


class Adapter(MethodModule):
    """``x + up(act(down(x)))`` with ``up`` zero: the identity until it learns."""

    def __init__(self, d_model: int, bottleneck: int, activation: str) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class AdapterTuning(TuningMethod):
    name = "adapter"
    settings_type = AdapterSettings
    not_mergeable_because = "its adapters add a nonlinear layer after each sublayer"

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        for block in transformer_blocks(backbone):
            output = block.attention.out.weight  # the sublayers' output width, device and dtype
            if self.settings.variant == "houlsby":
                block.attention_adapter = self._adapter(output)
            block.feed_forward_adapter = self._adapter(output)

    def _adapter(self, like: torch.Tensor) -> Adapter:
        return Adapter(like.shape[0], self.settings.bottleneck, self.settings.activation).to(like)

    def trainable_in(self, backbone: nn.Module) -> Iterable[nn.Parameter]:
        yield from super().trainable_in(backbone)
        if self.settings.train_norms:
            for module in backbone.modules():
                if isinstance(module, NORMS):
                    yield from module.parameters()
