"""LoRA (Hu et al. 2021): a low-rank update ``(alpha / rank) B A`` added to chosen projections.

Targets: ``q``, ``k``, ``v`` (row slices of the fused ``qkv`` projection, narrower for keys and values
under grouped-query attention), ``out`` (attention output), ``up`` (the feed-forward expansion: gate
and up together for SwiGLU, whose projections are one matrix) and ``down``. A is Kaiming-uniform and
B zero, so training starts from the base model; dropout acts on the update's input only.

The wrapped layer (``LoRALinear``) keeps the base ``weight`` and ``bias`` under their names and adds
``lora.<target>.a`` / ``.b``; ``merge`` adds the updates to the weight rows, ``unmerge`` takes them off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.peft.base import (
    FoldableLinear,
    MethodModule,
    MethodSettings,
    TuningMethod,
    check_positive_int,
    check_targets,
    is_number,
    transformer_blocks,
)

ATTENTION_TARGETS = ("q", "k", "v")
TARGETS = (*ATTENTION_TARGETS, "out", "up", "down")


@dataclass(frozen=True)
class LoRASettings(MethodSettings):
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q", "v")

    def validate(self) -> None:
        super().validate()
        check_positive_int("rank", self.rank)
        if not (is_number(self.alpha) and self.alpha > 0):
            raise ConfigError("peft.alpha", f"peft.alpha={self.alpha!r} must be positive")
        if not (is_number(self.dropout) and 0 <= self.dropout < 1):
            raise ConfigError("peft.dropout", f"peft.dropout={self.dropout!r} must be in [0, 1)")
        object.__setattr__(self, "targets", check_targets("targets", self.targets, TARGETS))


class LowRankUpdate(MethodModule):
    """``B A`` of rank ``rank``: A (rank, in) Kaiming-uniform as ``nn.Linear`` draws its weights,
    B (out, rank) zero."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(rank, in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.a), self.b)

    def matrix(self) -> torch.Tensor:
        return self.b @ self.a


class LoRALinear(FoldableLinear):
    """A base linear layer plus one low-rank update per target, each on its own rows of the output."""

    def __init__(self, base: nn.Linear, rows: dict[str, slice], rank: int, alpha: float, dropout: float):
        super().__init__(base)
        self.rows = rows
        self.scaling = alpha / rank
        sizes = {name: span.stop - span.start for name, span in rows.items()}
        updates = {name: LowRankUpdate(self.in_features, size, rank) for name, size in sizes.items()}
        self.lora = nn.ModuleDict(updates).to(self.weight)
        self.lora_dropout = nn.Dropout(dropout)

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        h = self.lora_dropout(x)
        for name, update in self.lora.items():
            # out of place: with a frozen input (LoRA on out, up or down alone) y is a view of a tensor
            # that needs no gradient, and autograd refuses to add one in place
            rows = torch.arange(self.rows[name].start, self.rows[name].stop, device=y.device)
            y = y.index_add(-1, rows, update(h), alpha=self.scaling)
        return y

    def fold_(self, weight: torch.Tensor, bias: torch.Tensor | None, undo: bool = False) -> None:
        sign = -1.0 if undo else 1.0
        for name, update in self.lora.items():
            weight[self.rows[name]] += sign * self.scaling * update.matrix().to(weight.dtype)


class LoRA(TuningMethod):
    name = "lora"
    settings_type = LoRASettings
    mergeable = True

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        targets = self.settings.targets
        for block in transformer_blocks(backbone):
            attention, feed_forward = block.attention, block.feed_forward
            qkv_rows = {t: attention.projection_rows[t] for t in ATTENTION_TARGETS if t in targets}
            if qkv_rows:
                attention.qkv = self._wrap(attention.qkv, qkv_rows)
            for owner, target in ((attention, "out"), (feed_forward, "up"), (feed_forward, "down")):
                if target in targets:
                    base = getattr(owner, target)
                    setattr(owner, target, self._wrap(base, {target: slice(0, base.out_features)}))

    def _wrap(self, base: nn.Linear, rows: dict[str, slice]) -> LoRALinear:
        return LoRALinear(base, rows, self.settings.rank, self.settings.alpha, self.settings.dropout)
