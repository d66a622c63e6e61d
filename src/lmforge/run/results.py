"""One line per run: what a sweep's summary reads (``result.json`` in the run's folder).

Every run writes it, finished or failed, so a multirun's summary has one row per job. The throughput
and peak memory are the last values Lightning logged (ThroughputMonitor's window of recent steps and
our PeakMemory callback); they are absent when those callbacks or the logger are switched off.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint

RESULT_FILE = "result.json"
TOKENS_PER_SEC = ("train/items_per_sec", "train/device/items_per_sec")  # items: real tokens (length_fn)
PEAK_MEMORY = "train/peak_memory_gb"


def job_overrides() -> list[str]:
    """The command-line overrides of this run (this job's share of a sweep), as Hydra records them."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def best_metric(trainer: pl.Trainer, metric: str) -> float | None:
    """The best ``metric`` of the run: the checkpoint callback's score where it watches that metric,
    else the last value logged."""
    for callback in trainer.checkpoint_callbacks:
        watches = isinstance(callback, ModelCheckpoint) and callback.monitor == metric
        if watches and callback.best_model_score is not None:
            return number(callback.best_model_score)
    return number(trainer.callback_metrics.get(metric))


def finished_result(
    trainer: pl.Trainer, task: pl.LightningModule, metric: str, seconds: float
) -> dict[str, Any]:
    logged = trainer.logged_metrics
    total = sum(p.numel() for p in task.parameters())
    trainable = sum(p.numel() for p in task.parameters() if p.requires_grad)
    tokens_per_sec = next((number(logged[key]) for key in TOKENS_PER_SEC if key in logged), None)
    return {
        "status": "finished",
        "metric": metric,
        "best": best_metric(trainer, metric),
        "trainable_pct": 100.0 * trainable / max(1, total),
        "parameters": total,
        "tokens_per_sec": tokens_per_sec,
        "peak_memory_gb": number(logged.get(PEAK_MEMORY)),
        "steps": trainer.global_step,
        "wall_seconds": seconds,
    }


def failed_result(error: BaseException, metric: str, seconds: float) -> dict[str, Any]:
    return {
        "status": "failed",
        "metric": metric,
        "error": f"{type(error).__name__}: {error}".splitlines()[0][:300],
        "wall_seconds": seconds,
    }


def write_result(output_dir: str | Path, result: dict[str, Any]) -> Path:
    path = Path(output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"overrides": job_overrides(), **result, "output_dir": str(Path(output_dir))}
    path.write_text(json.dumps(record) + "\n")
    return path


def read_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job's result under a sweep folder, in job order (job folders are numbered)."""
    paths = sorted(
        Path(sweep_dir).glob(f"*/{RESULT_FILE}"),
        key=lambda p: (not p.parent.name.isdigit(), int(p.parent.name) if p.parent.name.isdigit() else 0, p),
    )
    return [json.loads(path.read_text()) for path in paths]
