"""A training run stopped as a scheduler stops it: the run sends itself SIGTERM after a given step.

``bench/gpu_check.py`` adds it to a ``python train.py`` run (with ``bench/`` on ``PYTHONPATH``) as
``+callbacks.stop._target_=signal_at_step.SignalAtStep +callbacks.stop.step=N``: lmforge's preemption
callback (conf/callbacks/preemption.yaml) then saves ``last.ckpt`` at the end of step N and the run
exits with status 0, as a preempted job does; ``resume=auto`` goes on from there.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Send this process ``signal_name`` once, after the batch that ends step ``step - 1``."""

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step = step
        self.signal = getattr(signal, signal_name)
        self.sent = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.sent and trainer.global_step == self.step - 1:
            self.sent = True
            os.kill(os.getpid(), self.signal)
