"""A callback the multi-process tests put into ``python train.py`` runs (``+callbacks.probe``)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class ParameterDump(pl.Callback):
    """At the end of training each rank writes its full parameters to ``<folder>/rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        params = {
            name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in pl_module.named_parameters()
        }
        torch.save(params, self.folder / f"rank{trainer.global_rank}.pt")
