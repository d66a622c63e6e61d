"""AdamW with weight decay on matrices only, and a warm-up then decay learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Timer
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


def build_optimizer(module: nn.Module, settings: OptimizerSettings, fused: bool = True) -> torch.optim.AdamW:
    """AdamW's fused kernel: one pass over each parameter instead of a dozen elementwise ops (on one
    CPU thread, 5 instead of 24 ms a step for ``llama_mini``; the same update up to float rounding).
    ``fused=False``: torch's default kernel, where Lightning refuses a fused one (``fused_refused``)."""
    return torch.optim.AdamW(
        parameter_groups(module, settings.weight_decay),
        lr=settings.lr,
        betas=settings.betas,
        eps=settings.eps,
        fused=fused,
    )


def fused_refused(trainer: pl.Trainer) -> bool:
    """Lightning refuses to clip the gradients of an optimizer that unscales them in its own step
    (a fused one) under mixed precision, bf16 included, although bf16 has no loss scale to undo."""
    return bool(trainer.gradient_clip_val) and str(trainer.precision) in ("16-mixed", "bf16-mixed")


def lr_multiplier(
    settings: OptimizerSettings,
    total_steps: int | None,
    time_used: Callable[[], float] | None = None,
) -> Callable[[int], float]:
    """Factor on the peak rate at each step: linear warm-up, then linear or cosine decay (or flat).

    ``total_steps`` is the step budget (None: none) and ``time_used`` reads the fraction of a
    wall-time budget spent so far (None: none). The decay follows whichever budget is nearer its end,
    so a run cut by ``trainer.max_time`` still ends at ``min_lr_ratio``. Warm-up counts steps
    (``warmup_steps``, or ``warmup_ratio`` of the step budget); with a time budget alone and no
    ``warmup_steps``, it is the first ``warmup_ratio`` of the time.
    """
    if total_steps is None and time_used is None:
        raise ValueError("a schedule needs a step budget, a time budget or both")
    warmup = settings.warmup(total_steps) if total_steps is not None else settings.warmup_steps
    time_warmup = settings.warmup_ratio if warmup is None else 0.0
    floor = settings.min_lr_ratio

    def factor(step: int) -> float:
        spent = min(1.0, time_used()) if time_used is not None else 0.0
        if warmup is not None and step < warmup:
            return (step + 1) / warmup
        if spent < time_warmup:
            return max(spent, 1e-6) / time_warmup
        if settings.schedule == "constant":
            return 1.0
        progress = (spent - time_warmup) / (1.0 - time_warmup) if time_used is not None else 0.0
        if total_steps is not None:
            progress = max(progress, (step - warmup) / max(1, total_steps - warmup))
        progress = min(1.0, progress)
        if settings.schedule == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def time_budget_used(trainer: pl.Trainer) -> Callable[[], float] | None:
    """The fraction of ``trainer.max_time`` spent in training so far, read from Lightning's Timer
    (whose state checkpoints keep, so a resumed run goes on where it stopped); None without a budget."""
    timers = [callback for callback in trainer.callbacks if isinstance(callback, Timer)]
    if not timers:
        return None
    timer = timers[0]

    def used() -> float:
        elapsed = timer.time_elapsed("train")
        remaining = timer.time_remaining("train") or 0.0
        return elapsed / max(elapsed + remaining, 1e-9)

    return used


def configure_optimizers(module: pl.LightningModule, settings: OptimizerSettings) -> dict:
    """AdamW and its per-step schedule, for a LightningModule's ``configure_optimizers``."""
    optimizer = build_optimizer(module, settings, fused=not fused_refused(module.trainer))
    estimate = module.trainer.estimated_stepping_batches  # max_steps, or epochs x batches
    total = max(1, int(estimate)) if math.isfinite(estimate) else None
    time_used = time_budget_used(module.trainer)
    if total is None and time_used is None:
        if settings.schedule != "constant":
            raise ConfigError(
                "trainer.max_steps",
                "the learning-rate schedule needs a training length: set trainer.max_steps, "
                "trainer.max_epochs or trainer.max_time, or optim.schedule=constant",
            )
        total = 1
    scheduler = LambdaLR(optimizer, lr_multiplier(settings, total, time_used))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
