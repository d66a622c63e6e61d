"""``train(cfg)``: resolve the spec, build the trainer, data and task, fit, record the result."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from lmforge.io.method_files import save_method
from lmforge.run.build import build_task, build_trainer, composed_choices, keep_tokenizer, prepare_data
from lmforge.run.plan import plan_run
from lmforge.run.results import finished_result, write_result
from lmforge.run.spec import RunSpec, resolve
from lmforge.run.tracking import finish_runs, record_run
from lmforge.tasks.sharding import builds_on_meta

log = logging.getLogger("lmforge.run")


def train(cfg, extra_callbacks: Sequence[Callback] = ()) -> float | None:
    """Train the run the composed config ``cfg`` describes; return its ``optimized_metric``.

    Every setting is checked before any work (``resolve``). ``extra_callbacks`` join the configured
    ones (a sweep's pruning callback, for one). With ``plan=true`` the run's costs are printed
    instead and nothing is trained (returns None).
    """
    started = time.perf_counter()
    spec = resolve(cfg)
    if spec.plan:
        return plan_run(spec)
    if spec.resumes_last:
        keep_earlier_metrics(spec)
    trainer = build_trainer(spec, extra_callbacks)
    if choices := composed_choices():
        log.info("composed %s", choices)
    pl.seed_everything(spec.seed, workers=True)
    datamodule = prepare_data(spec)
    keep_tokenizer(spec, datamodule)
    # strategy meta_init: the processes but rank 0 build nothing in memory (LanguageTask.configure_model)
    task = build_task(spec, datamodule, on_meta=builds_on_meta(trainer.strategy, trainer.global_rank))
    # trainer.loggers, not loggers: a fast_dev_run replaces them with a logger that writes nothing
    record_run(trainer.loggers, spec.config, task.backbone, spec.output_dir / "tokenizer.json")
    try:
        # weights_only: a checkpoint resumes with tensors and plain data only, it cannot run code on load
        trainer.fit(task, datamodule=datamodule, ckpt_path=spec.ckpt_path, weights_only=True)
    finally:
        finish_runs(trainer.loggers)
    save_method_weights(spec, task, trainer)
    result = finished_result(trainer, task, spec.optimized_metric, time.perf_counter() - started)
    if trainer.is_global_zero:  # one line per run, not one per process
        write_result(spec.output_dir, result)
    value = trainer.callback_metrics.get(spec.optimized_metric)
    return None if value is None else float(value)


def save_method_weights(spec: RunSpec, task, trainer: pl.Trainer) -> None:
    """A tuning method's weights alone in ``<run>/peft/``, as HF peft users expect them."""
    if task.method.name == "none":
        return
    saved = save_method(
        spec.output_dir / "peft", task, task.method, base=spec.init_from, write=trainer.is_global_zero
    )
    log.info("peft=%s: its trained weights are in %s", task.method.name, saved)


def keep_earlier_metrics(spec: RunSpec) -> None:
    """Move the run folder's ``metrics.csv`` aside before a CSV logger starts in it again.

    Lightning's CSVLogger deletes the ``metrics.csv`` it finds in its folder; a run that resumes in its
    own folder would lose the metrics of its earlier part. They move to ``metrics.<n>.csv`` instead (the
    rows logged after the checkpoint was written are in there too: they are not the resumed run's).
    Rank 0 alone: the other processes of a multi-process run start later and would move its new file.
    """
    if rank_zero_only.rank != 0:
        return
    for entry in (spec.config.get("logger") or {}).values():
        if not entry or not str(entry.get("_target_", "")).endswith("CSVLogger"):
            continue
        folder = Path(entry.save_dir) / str(entry.get("name") or "") / str(entry.get("version") or "")
        earlier = folder / "metrics.csv"
        if earlier.is_file():
            number = 1 + sum(1 for _ in folder.glob("metrics.*.csv"))
            kept = earlier.rename(folder / f"metrics.{number}.csv")
            log.info("resume=auto: the metrics logged so far are kept in %s", kept)
