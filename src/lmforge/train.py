"""Training entry point: ``python train.py [overrides]`` or ``python -m lmforge.train [overrides]``."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from lmforge.checkpoint_io import use_atomic_checkpoints
from lmforge.checkpoints import is_distributed_checkpoint
from lmforge.checks import (
    build,
    check_config,
    check_model_objective,
    check_resume_shape,
    check_tuning,
    exit_on_config_error,
    find_config_error,
)
from lmforge.distributed import builds_on_meta
from lmforge.errors import ConfigError, TrainingDiverged
from lmforge.hf import check_folder, derive_model_config, is_hf
from lmforge.memory import current_resident_bytes
from lmforge.optim import OptimizerSettings
from lmforge.peft import save_method
from lmforge.plan import run_plan
from lmforge.pretrained import pretrained_tokenizer
from lmforge.resolvers import register_resolvers
from lmforge.results import failed_result, finished_result, write_result
from lmforge.runtime import keep_freed_memory
from lmforge.tasks import TASKS
from lmforge.tracking import finish_runs, record_run, without_secrets

log = logging.getLogger("lmforge.train")

register_resolvers()
# Lightning 2.6 calls a torch API that torch 2.13 deprecates: nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")

# conf/ sits at the root of the checkout; an absolute path works for `python train.py` and `-m`.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def instantiate_entries(group: DictConfig | None) -> list[Any]:
    """Build every entry of a group such as ``callbacks`` or ``logger`` (a dict of named configs)."""
    if not group:
        return []
    return [build(entry) for entry in group.values() if entry and "_target_" in entry]


def group_choices() -> str:
    if not HydraConfig.initialized():
        return ""
    choices = HydraConfig.get().runtime.choices
    groups = ("model", "objective", "data", "optim", "trainer", "logger", "experiment", "debug")
    return " ".join(f"{g}={choices[g]}" for g in groups if choices.get(g) not in (None, "null"))


def resolve_resume(cfg: DictConfig) -> None:
    """``resume=auto``: resume from this run folder's ``checkpoints/last.ckpt`` when there is one.

    The run folder is ``paths.output_dir``, so a rerun finds the checkpoint only when it writes to the
    same folder: give a fixed ``hydra.run.dir=...`` (the default one is named by the start time). An
    explicit ``ckpt_path`` wins. Sets ``cfg.ckpt_path`` in place; a missing checkpoint starts fresh.
    """
    resume = cfg.get("resume", False)
    if resume in (False, None):
        return
    if resume != "auto":
        raise ConfigError("resume", f"resume={resume} is not one of false, auto")
    if cfg.get("ckpt_path"):
        log.info("resume=auto: ckpt_path=%s is given and wins", cfg.ckpt_path)
        return
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if last.is_file() or is_distributed_checkpoint(last):
        log.info("resume=auto: resuming from %s", last)
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
        keep_earlier_metrics(cfg)
    else:
        log.info(
            "resume=auto: no %s yet, starting fresh (a rerun finds it with the same hydra.run.dir)", last
        )


def keep_earlier_metrics(cfg: DictConfig) -> None:
    """Move the run folder's ``metrics.csv`` aside before a CSV logger starts in it again.

    Lightning's CSVLogger deletes the ``metrics.csv`` it finds in its folder; a run that resumes in its
    own folder would lose the metrics of its earlier part. They move to ``metrics.<n>.csv`` instead (the
    rows logged after the checkpoint was written are in there too: they are not the resumed run's).
    Rank 0 alone: the other processes of a multi-process run start later and would move its new file.
    """
    if rank_zero_only.rank != 0:
        return
    for entry in (cfg.get("logger") or {}).values():
        if not entry or not str(entry.get("_target_", "")).endswith("CSVLogger"):
            continue
        folder = Path(entry.save_dir) / str(entry.get("name") or "") / str(entry.get("version") or "")
        earlier = folder / "metrics.csv"
        if earlier.is_file():
            number = 1 + sum(1 for _ in folder.glob("metrics.*.csv"))
            kept = earlier.rename(folder / f"metrics.{number}.csv")
            log.info("resume=auto: the metrics logged so far are kept in %s", kept)


def check_run(cfg: DictConfig) -> tuple[Any, dict[str, Any], dict[str, Any], pl.LightningDataModule]:
    """Check a composed config and build what validates itself, before any data is read: the model
    config, the objective and optimiser settings, the DataModule (returned for ``train`` to use)."""
    if is_hf(cfg.model.get("init_from")):  # a Hugging Face folder: the shape comes from its config.json
        cfg.model = derive_model_config(OmegaConf.to_container(cfg.model, resolve=True))
        check_folder(cfg.model.init_from)  # weights whole and of its shapes, a tokenizer: before any data
    check_config(cfg)
    model_config = build(cfg.model)
    objective = OmegaConf.to_container(cfg.objective, resolve=True)
    check_model_objective(model_config, objective)
    check_tuning(model_config, objective, OmegaConf.to_container(cfg.peft) if cfg.get("peft") else None)
    if cfg.get("ckpt_path"):
        check_resume_shape(model_config, cfg.ckpt_path)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    OptimizerSettings(**optim)  # checked now; the task builds its own copy from the same dict
    return model_config, objective, optim, build(cfg.data)


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> float | None:
    """Check the config, build data, model and trainer, fit; return ``cfg.optimized_metric``.

    ``extra_callbacks`` join the configured ones (a sweep's pruning callback, for one). With
    ``plan=true`` the run's costs are printed instead and nothing is trained (returns None).
    """
    started = time.perf_counter()
    resolve_resume(cfg)
    model_config, objective, optim, datamodule = check_run(cfg)
    trainer = None
    if not cfg.get("plan"):
        callbacks = [*instantiate_entries(cfg.get("callbacks")), *extra_callbacks]
        loggers = instantiate_entries(cfg.get("logger"))
        if not loggers:  # with no logger (~logger) a learning-rate monitor has nowhere to write
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar callback then
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        use_atomic_checkpoints(trainer)  # a save killed half-way leaves the previous checkpoint whole

    if choices := group_choices():
        log.info("composed %s", choices)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("ckpt_path"):
        datamodule.restore(cfg.ckpt_path)
    elif model_config.init_from:
        datamodule.use_tokenizer(pretrained_tokenizer(model_config.init_from), model_config.init_from)
    datamodule.prepare_data()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule.tokenizer.save(str(output_dir / "tokenizer.json"))
    runtime = current_resident_bytes()  # the process before the model: what a plan counts as runtime

    model = OmegaConf.to_container(cfg.model, resolve=True)
    # a Hugging Face model may keep spare embedding rows beyond its tokenizer: they stay
    spare_rows = is_hf(model_config.init_from) and datamodule.vocab_size <= model_config.vocab_size
    if datamodule.vocab_size != model_config.vocab_size and not spare_rows:
        log.info(
            "model.vocab_size %d -> %d, the size of the tokenizer",
            model_config.vocab_size,
            datamodule.vocab_size,
        )
        model["vocab_size"] = datamodule.vocab_size
    peft = OmegaConf.to_container(cfg.peft, resolve=True) if cfg.get("peft") else None
    task_settings = {"model": model, "objective": objective, "optim": optim, "peft": peft}
    if objective["kind"] == "classify":
        task_settings.update(label_names=datamodule.label_names, tokenizer=datamodule.tokenizer)
    # strategy meta_init: the processes but rank 0 build nothing in memory (LanguageTask.configure_model)
    on_meta = trainer is not None and builds_on_meta(trainer.strategy, trainer.global_rank)
    with torch.device("meta") if on_meta else nullcontext():
        task = TASKS[objective["kind"]](**task_settings)
    task.report()
    if cfg.get("compile"):  # in place: the state dict keeps its keys (torch.compile(module) prefixes them)
        task.backbone.compile()
    task.run_config = without_secrets(OmegaConf.to_container(cfg, resolve=True))
    backbone = task.backbone
    log.info(
        "%s: %.2f M parameters in the backbone, %.1f MFLOP per token to train at %d tokens (6N + 12 L d T)",
        type(backbone).__name__,
        backbone.num_parameters() / 1e6,
        backbone.flops_per_token(cfg.data.max_seq_len) / 1e6,
        cfg.data.max_seq_len,
    )
    if trainer is None:
        plan = run_plan(cfg, task, datamodule, lambda **overrides: build(cfg.trainer, **overrides), runtime)
        (output_dir / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
        return None
    # trainer.loggers, not loggers: a fast_dev_run replaces them with a logger that writes nothing
    record_run(trainer.loggers, cfg, backbone, output_dir / "tokenizer.json")
    try:
        # weights_only: a checkpoint resumes with tensors and plain data only, it cannot run code on load
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    finally:
        finish_runs(trainer.loggers)
    if task.method.name != "none":  # the method's weights alone, as HF peft users expect them
        saved = save_method(
            output_dir / "peft", task, task.method, base=task.config.init_from, write=trainer.is_global_zero
        )
        log.info("peft=%s: its trained weights are in %s", task.method.name, saved)

    metric = cfg.get("optimized_metric") or ""
    result = finished_result(trainer, task, metric, time.perf_counter() - started)
    if trainer.is_global_zero:  # one line per run, not one per process
        write_result(output_dir, result)
    value = trainer.callback_metrics.get(metric)
    return None if value is None else float(value)


def run_job(cfg: DictConfig) -> float | None:
    """One job of a multirun: a failure is logged and recorded in its ``result.json``, and the sweep
    goes on to the next job (Hydra would otherwise stop at the first exception)."""
    started = time.perf_counter()
    try:
        return train(cfg)
    except Exception as error:
        config_error = find_config_error(error)
        shown = config_error if config_error is not None else error
        expected = config_error is not None or isinstance(error, TrainingDiverged)  # one line says it all
        log.error("job failed: %s", shown, exc_info=not expected)
        write_result(
            cfg.paths.output_dir,
            failed_result(shown, cfg.get("optimized_metric") or "", time.perf_counter() - started),
        )
        return None


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def unknown_preset(overrides: Sequence[str], config_dir: Path = Path(CONFIG_DIR)) -> str | None:
    """The one-line error for a ``group=option`` override naming no preset of ``conf/<group>/``, else None.

    Hydra's own message for it spans several lines and ends with a HYDRA_FULL_ERROR hint. Only plain
    overrides of the groups that are folders of ``conf/`` are checked (a comma list of a multirun
    too); ``+group=``, ``~group``, ``group/sub=``, ``null``, sweeps such as ``glob(...)`` and runs
    with another config dir are left to Hydra.
    """
    if any(arg.startswith(("--config-dir", "-cd", "hydra.searchpath")) for arg in overrides):
        return None
    for arg in overrides:
        group, equals, value = arg.partition("=")
        folder = config_dir / group
        if not equals or not group.isidentifier() or group == "hydra" or not folder.is_dir():
            continue
        if not re.fullmatch(r"[\w.-]+(,[\w.-]+)*", value):
            continue
        for option in value.split(","):
            if option != "null" and not (folder / f"{option}.yaml").is_file():
                presets = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
                return f"{group}={option} is not a preset; choose one of {presets} (conf/{group}/)"
    return None


def main() -> float | None:
    """``python train.py [overrides]``: an unknown preset is refused in one line (exit 2) before Hydra
    composes anything; then the Hydra app runs."""
    if (problem := unknown_preset(sys.argv[1:])) is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    keep_freed_memory()
    if is_multirun():
        return run_job(cfg)
    try:
        return exit_on_config_error(lambda: train(cfg))
    except TrainingDiverged as error:  # the settings were valid: status 3, not a config error's 2
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
