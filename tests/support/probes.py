"""Callbacks that tests put into ``python train.py`` runs, where nothing can be passed in
(``+callbacks.<name>._target_=tests.support.probes.<class>``): they write what they see to files, or
act at a given step."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import torch


class ParameterDump(pl.Callback):
    """At the end of training each rank writes its full parameters to ``<folder>/rank<r>.pt``; at the
    start, the devices its task was built on, before the strategy shards it, to ``rank<r>-built-on.json``
    (``["meta"]``: a build that allocated nothing)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        devices = sorted({p.device.type for p in pl_module.parameters()})
        (self.folder / f"rank{trainer.global_rank}-built-on.json").write_text(json.dumps(devices))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        params = {
            name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in pl_module.named_parameters()
        }
        torch.save(params, self.folder / f"rank{trainer.global_rank}.pt")


class TouchAtStep(pl.Callback):
    """Test probe for ``python train.py`` runs: touches ``marker`` once training reaches ``step``."""

    def __init__(self, marker: str, step: int) -> None:
        self.marker, self.step = Path(marker), step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.marker.exists():
            self.marker.touch()


class PreemptAt(pl.Callback):
    """Send this process SIGTERM after step ``step - 1``: the preemption callback saves ``last.ckpt``
    at the end of step ``step`` and the run stops, as a preempted job would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGTERM)
