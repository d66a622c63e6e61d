"""IA3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning"): learned vectors that rescale the keys, the values and the feed-forward activation.

Targets: ``k`` and ``v`` (row slices of the fused ``qkv`` output) and ``ff`` (the feed-forward
activation, i.e. the input of ``down``). The vectors start at one, so training starts from the base
model. A rescaled output row is a rescaled weight row (and bias entry), a rescaled input is a rescaled
weight column: ``merge`` folds the vectors into ``qkv`` and ``down``, ``unmerge`` divides them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.peft.base import (
    FoldableLinear,
    MethodModule,
    MethodSettings,
    TuningMethod,
    check_targets,
    transformer_blocks,
)

TARGETS = ("k", "v", "ff")


@dataclass(frozen=True)
class IA3Settings(MethodSettings):
    targets: tuple[str, ...] = TARGETS

    def validate(self) -> None:
        super().validate()
        object.__setattr__(self, "targets", check_targets("targets", self.targets, TARGETS))


class ScalingVector(MethodModule):
    """A learned vector of ``size`` factors, starting at one."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))


class RowScaledLinear(FoldableLinear):
    """A base linear layer whose output rows ``rows[name]`` are multiplied by the vector ``ia3[name]``."""

    def __init__(self, base: nn.Linear, rows: dict[str, slice]) -> None:
        super().__init__(base)
        self.rows = rows
        sizes = {name: span.stop - span.start for name, span in rows.items()}
        self.ia3 = nn.ModuleDict({name: ScalingVector(size) for name, size in sizes.items()}).to(self.weight)

    def output_scale(self) -> torch.Tensor:
        """One factor per output row: the vectors where they apply, one elsewhere."""
        scale = torch.ones(self.out_features, dtype=self.weight.dtype, device=self.weight.device)
        for name, vector in self.ia3.items():
            span = self.rows[name]
            scale = scale.slice_scatter(vector.scale, start=span.start, end=span.stop)
        return scale

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) * self.output_scale()

    def fold_(self, weight: torch.Tensor, bias: torch.Tensor | None, undo: bool = False) -> None:
        scale = self.output_scale().to(weight.dtype)
        rescale = torch.Tensor.div_ if undo else torch.Tensor.mul_
        rescale(weight, scale[:, None])
        if bias is not None:
            rescale(bias, scale)


class ColumnScaledLinear(FoldableLinear):
    """A base linear layer whose input is multiplied by the vector ``ia3`` first."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__(base)
        self.ia3 = ScalingVector(self.in_features).to(self.weight)

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.ia3.scale, self.weight, self.bias)

    def fold_(self, weight: torch.Tensor, bias: torch.Tensor | None, undo: bool = False) -> None:
        rescale = torch.Tensor.div_ if undo else torch.Tensor.mul_
        rescale(weight, self.ia3.scale.to(weight.dtype)[None, :])


class IA3(TuningMethod):
    name = "ia3"
    settings_type = IA3Settings
    mergeable = True

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        targets = self.settings.targets
        for block in transformer_blocks(backbone):
            attention = block.attention
            rows = {t: attention.projection_rows[t] for t in ("k", "v") if t in targets}
            if rows:
                attention.qkv = RowScaledLinear(attention.qkv, rows)
            if "ff" in targets:
                block.feed_forward.down = ColumnScaledLinear(block.feed_forward.down)
