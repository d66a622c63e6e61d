"""Lightning callbacks of our own (the rest come from Lightning, configured in conf/callbacks/)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lmforge.memory import peak_bytes, reset_peak


class ValidateLastStep(Callback):
    """Validate the final model even when ``val_check_interval`` does not divide ``max_steps``.

    At the last step it asks the trainer to stop, and Lightning validates before stopping, so the
    final metrics are logged at the same step numbering as the others and reach ModelCheckpoint.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class PeakMemory(Callback):
    """Logs ``train/peak_memory_gb``: the most GPU memory allocated, or on CPU the process's peak
    resident set size, since training started."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reset_peak(trainer.strategy.root_device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % max(1, trainer.log_every_n_steps):
            return
        peak = peak_bytes(trainer.strategy.root_device)
        pl_module.log("train/peak_memory_gb", peak / 1e9, on_step=True, on_epoch=False)
