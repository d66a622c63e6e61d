"""AdamW with weight decay on matrices only, and a warm-up then decay learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from lmforge.errors import ConfigError

SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class OptimizerSettings:
    """``optim``: see ``conf/optim/adamw.yaml`` for the meaning of each key."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    schedule: str = "cosine"
    warmup_ratio: float = 0.06
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.lr <= 0:
            raise ConfigError("optim.lr", f"optim.lr={self.lr} must be positive")
        if self.weight_decay < 0:
            raise ConfigError("optim.weight_decay", f"optim.weight_decay={self.weight_decay} must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError("optim.betas", f"optim.betas={list(self.betas)} must be two numbers in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                "optim.schedule", f"optim.schedule={self.schedule!r} is not one of {', '.join(SCHEDULES)}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(
                "optim.warmup_ratio", f"optim.warmup_ratio={self.warmup_ratio} must be in [0, 1)"
            )
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError("optim.warmup_steps", f"optim.warmup_steps={self.warmup_steps} must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(
                "optim.min_lr_ratio", f"optim.min_lr_ratio={self.min_lr_ratio} must be in [0, 1]"
            )

    def warmup(self, total_steps: int) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round(self.warmup_ratio * total_steps)


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (linear and embedding weights); leave biases and norm gains alone."""
    params = [p for p in module.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def build_optimizer(module: nn.Module, settings: OptimizerSettings) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameter_groups(module, settings.weight_decay),
        lr=settings.lr,
        betas=settings.betas,
        eps=settings.eps,
    )


def lr_multiplier(settings: OptimizerSettings, total_steps: int) -> Callable[[int], float]:
    """Factor on the peak rate at each step: linear warm-up, then linear or cosine decay (or flat)."""
    warmup = settings.warmup(total_steps)
    floor = settings.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if settings.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if settings.schedule == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def configure_optimizers(module: pl.LightningModule, settings: OptimizerSettings) -> dict:
    """AdamW and its per-step schedule, for a LightningModule's ``configure_optimizers``."""
    optimizer = build_optimizer(module, settings)
    estimate = module.trainer.estimated_stepping_batches  # max_steps, or epochs x batches
    if not math.isfinite(estimate) and settings.schedule != "constant":
        raise ConfigError(
            "trainer.max_steps",
            "the learning-rate schedule needs a training length: set trainer.max_steps (or "
            "trainer.max_epochs), or optim.schedule=constant",
        )
    total = max(1, int(estimate)) if math.isfinite(estimate) else 1
    scheduler = LambdaLR(optimizer, lr_multiplier(settings, total))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
