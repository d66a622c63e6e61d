"""Lightning callbacks of our own (the rest come from Lightning, configured in conf/callbacks/)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


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
