"""Stopping a trial early: the pruning callback, and the two ways a trial's metric can go wrong."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import optuna
from lightning.pytorch.callbacks import Callback

from lmforge.errors import ConfigError


class MetricNotLogged(ConfigError):
    """The study's metric is not among what a trial logs: every trial would fail, so the study stops."""


class TrialDiverged(RuntimeError):
    """The metric became NaN or infinite: the trial fails at once instead of training on."""


class PruningCallback(Callback):
    """Reports the study's metric to the trial after each validation, at the training step, and stops
    the run with ``optuna.TrialPruned`` when the pruner says the trial will not beat the others.

    Written here rather than taken from optuna-integration, which would be one more package for ten
    lines. The sanity check before training is skipped: it runs on a model that has not trained.
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.last_step: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
            raise MetricNotLogged(
                "metric",
                f"metric={self.metric} is not logged by validation: "
                f"set metric to one of {logged or '(none)'}",
            )
        value, step = float(value), trainer.global_step
        if not math.isfinite(value):
            raise TrialDiverged(f"{self.metric} is {value} at step {step}: the run diverged")
        if step == self.last_step:  # the last step can also be a validation interval
            return
        self.trial.report(value, step)
        self.last_step = step
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric}={value:.4f} at step {step}")
