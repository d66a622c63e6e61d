"""Building a run from its ``RunSpec``: the trainer, the data (prepared) and the task.

Each builder reads the spec only; ``train()`` and ``plan`` call them in the same order, so a plan
measures the run that ``train`` would make.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar
from omegaconf import DictConfig, OmegaConf

from lmforge.io.atomic import use_atomic_checkpoints
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.hf import is_hf
from lmforge.io.init_from import pretrained_tokenizer
from lmforge.run.checks import build
from lmforge.run.spec import RunSpec, with_vocab_size
from lmforge.run.tracking import without_secrets
from lmforge.tasks import LanguageTask

log = logging.getLogger("lmforge.run")

SHOWN_GROUPS = ("model", "objective", "peft", "data", "optim", "trainer", "strategy", "logger", "experiment")


def instantiate_entries(group: DictConfig | None) -> list[Any]:
    """Build every entry of a group such as ``callbacks`` or ``logger`` (a dict of named configs)."""
    if not group:
        return []
    return [build(entry) for entry in group.values() if entry and "_target_" in entry]


def build_trainer(spec: RunSpec, extra_callbacks: Sequence[Callback] = (), **overrides: Any) -> pl.Trainer:
    """The run's Lightning ``Trainer`` with its callbacks and loggers; ``overrides`` replace trainer
    settings (``plan`` times a few steps this way)."""
    if "callbacks" in overrides or "logger" in overrides:
        return build(spec.trainer, **overrides)
    cfg = spec.config
    callbacks = [*instantiate_entries(cfg.get("callbacks")), *extra_callbacks]
    loggers = instantiate_entries(cfg.get("logger"))
    if not loggers:  # with no logger (~logger) a learning-rate monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not spec.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = build(spec.trainer, callbacks=callbacks, logger=loggers or False, **overrides)
    use_atomic_checkpoints(trainer)  # a save killed half-way leaves the previous checkpoint whole
    return trainer


def composed_choices() -> str:
    """``model=bert_tiny objective=mlm_nsp ...``: the presets Hydra composed, for the log."""
    if not HydraConfig.initialized():
        return ""
    choices = HydraConfig.get().runtime.choices
    return " ".join(f"{g}={choices[g]}" for g in SHOWN_GROUPS if choices.get(g) not in (None, "null"))


def prepare_data(spec: RunSpec) -> pl.LightningDataModule:
    """The run's DataModule, prepared: the tokenizer of the checkpoint it resumes, else of
    ``model.init_from``, else given or trained; the token shards or splits made or found in the cache.
    """
    datamodule = spec.data.build()
    if spec.ckpt_path:  # resuming reads text as the checkpoint did
        datamodule.restore(read_checkpoint(spec.ckpt_path, weights=False), spec.ckpt_path)
    elif spec.init_from:
        datamodule.use_tokenizer(pretrained_tokenizer(spec.init_from), spec.init_from)
    datamodule.prepare_data()
    return datamodule


def keep_tokenizer(spec: RunSpec, datamodule: pl.LightningDataModule) -> None:
    """The run folder's ``tokenizer.json``: what the run reads text with (W&B records it too)."""
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    datamodule.tokenizer.save(str(spec.output_dir / "tokenizer.json"))


def fitted_model(spec: RunSpec, vocab_size: int) -> Any:
    """The spec's model config with the tokenizer's vocabulary size (a Hugging Face model may keep
    spare embedding rows beyond its tokenizer: they stay)."""
    model = spec.model
    spare_rows = is_hf(spec.init_from) and vocab_size <= model.vocab_size
    if vocab_size == model.vocab_size or spare_rows:
        return model
    log.info("model.vocab_size %d -> %d, the size of the tokenizer", model.vocab_size, vocab_size)
    return with_vocab_size(model, vocab_size)


def build_task(spec: RunSpec, datamodule: pl.LightningDataModule, on_meta: bool = False) -> LanguageTask:
    """The objective's task on the prepared data (``on_meta``: built on the meta device, for the
    processes but rank 0 under ``meta_init``), with the run's settings kept for checkpoints."""
    settings = {
        "model": fitted_model(spec, datamodule.vocab_size),
        "objective": spec.objective_settings,
        "optim": spec.optim,
        "peft": spec.peft,
        **spec.objective.task.data_arguments(datamodule),
    }
    with torch.device("meta") if on_meta else nullcontext():
        task = spec.objective.task(**settings)
    task.report()
    if spec.compile:  # in place: the state dict keeps its keys (torch.compile(module) prefixes them)
        task.backbone.compile()
    task.run_config = without_secrets(OmegaConf.to_container(spec.config, resolve=True))
    backbone = task.backbone
    log.info(
        "%s: %.2f M parameters in the backbone, %.1f MFLOP per token to train at %d tokens (6N + 12 L d T)",
        type(backbone).__name__,
        backbone.num_parameters() / 1e6,
        backbone.flops_per_token(spec.data.max_seq_len) / 1e6,
        spec.data.max_seq_len,
    )
    return task
