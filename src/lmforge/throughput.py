"""What Lightning's ThroughputMonitor needs from a batch and a model, and the peak memory of a run.

``ThroughputMonitor`` (conf/callbacks/throughput.yaml) times the steps, counts samples with
``batch_samples`` and tokens with ``batch_tokens``, and reads ``flops_per_batch`` from the task (set
each step from the backbone's ``flops_per_token``) to log FLOP/s and, on a GPU Lightning knows the
peak of, the model FLOPs utilisation (MFU).
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


def batch_samples(batch: dict[str, torch.Tensor]) -> int:
    return int(batch["input_ids"].shape[0])


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real tokens of a batch: padding (attention mask 0) does not count."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def training_flops(backbone: Any, input_ids: torch.Tensor) -> int:
    """Training FLOPs of one batch: every position of the (padded) batch costs ``flops_per_token``."""
    return backbone.flops_per_token(input_ids.shape[1]) * input_ids.numel()


class PeakMemory(Callback):
    """Logs ``train/peak_memory_gb``: the most GPU memory allocated, or on CPU the process's peak
    resident set size, so far."""

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % max(1, trainer.log_every_n_steps):
            return
        if trainer.strategy.root_device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(trainer.strategy.root_device)
        else:  # ru_maxrss is in KiB on Linux, in bytes on macOS
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
                1 if sys.platform == "darwin" else 1024
            )
        pl_module.log("train/peak_memory_gb", peak / 1e9, on_step=True, on_epoch=False)
