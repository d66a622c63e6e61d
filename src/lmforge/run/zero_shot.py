"""Zero-shot scoring: a checkpoint scored, untrained, as a fine-tuning run from it would start.

Two ways in, both through ``lmforge eval``:

- ``template=<name> data=<labeled set>``: a pretraining checkpoint's own LM head rates the set through
  the template (``objective=prompt_lm``'s scoring: its backbone and LM head, its tokenizer);
- an objective other than the checkpoint's (``objective=...``, or one a data preset chooses:
  ``data=gcide_definitions`` chooses ``objective=sft``): the task under that objective.

No optimiser is made and no weight changes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.init_from import checkpoint_model, pretrained_tokenizer
from lmforge.objectives.settings import ObjectiveSettings
from lmforge.optim import OptimizerSettings
from lmforge.run.registry import CORPUS, LABELED, OBJECTIVES, Objective, objective
from lmforge.run.spec import check_lm_head, check_model_family, data_spec
from lmforge.tasks import LanguageTask
from lmforge.tasks.base import model_config

log = logging.getLogger("lmforge.run")


def zero_shot(cfg: DictConfig, checkpoint: dict[str, Any]) -> tuple[LanguageTask, pl.LightningDataModule]:
    """The task that ``cfg`` (eval's config: ``ckpt_path``, ``template`` or ``objective``, ``data``)
    asks to score the checkpoint under, untrained, and its data, prepared."""
    if cfg.get("template") is not None:
        entry, settings = prompt_objective(cfg, checkpoint)
    else:
        entry = objective(cfg.objective.get("kind"))
        settings = entry.settings(OmegaConf.to_container(cfg.objective, resolve=True))
    with open_dict(cfg):  # what the data presets' interpolations read
        cfg.model = checkpoint["hyper_parameters"]["model"]
        cfg.seed = (checkpoint.get("config") or {}).get("seed", 0)
    log.info("zero-shot: %s scored under objective.kind=%s, untrained", cfg.ckpt_path, entry.kind)
    return untrained_start(cfg.ckpt_path, entry, settings, cfg.data)


def prompt_objective(cfg: DictConfig, checkpoint: dict[str, Any]) -> tuple[Objective, ObjectiveSettings]:
    """``prompt_lm`` with ``cfg.template``, after checking that the checkpoint is a pretraining one and
    that ``cfg.data`` is a labeled set."""
    kind = checkpoint.get("hyper_parameters", {}).get("objective", {}).get("kind")
    if kind not in OBJECTIVES:
        raise ConfigError("ckpt_path", f"{cfg.ckpt_path} is not a checkpoint written by lmforge's train.py")
    if OBJECTIVES[kind].reads != CORPUS:
        own = ": it carries its own template, drop template=" if kind == "prompt_lm" else ""
        raise ConfigError(
            "template",
            f"a template scores zero-shot from a pretraining checkpoint (objective mlm or clm), and "
            f"{cfg.ckpt_path} was trained with objective.kind={kind}{own}",
        )
    data = cfg.get("data")
    if not data or LABELED not in data:
        raise ConfigError(
            "data",
            "zero-shot scoring reads a labeled set: choose one, e.g. data=movie_sentiment or data=csv "
            "data.source.path=<file>",
        )
    entry = objective("prompt_lm")
    template = OmegaConf.to_container(cfg.template, resolve=True)
    return entry, entry.settings({"kind": entry.kind, "template": template})


def untrained_start(
    ckpt_path: str, entry: Objective, settings: ObjectiveSettings, data: DictConfig
) -> tuple[LanguageTask, pl.LightningDataModule]:
    """The task a fine-tuning run under ``entry`` with ``model.init_from=ckpt_path`` (full fine-tuning)
    starts from, before its first step, in eval mode, and the run's data (the ``data`` node, read with
    the checkpoint's tokenizer) prepared: what a zero-shot evaluation scores."""
    saved = checkpoint_model(read_checkpoint(ckpt_path, weights=False))
    if not saved:
        raise ConfigError("ckpt_path", f"{ckpt_path} is not a checkpoint written by lmforge's train.py")
    model = dataclasses.replace(model_config(saved), init_from=str(ckpt_path))
    check_model_family(model, entry)
    settings.check_model(model)
    check_lm_head(model, entry)
    datamodule = data_spec(data, model, entry, settings).build()
    datamodule.use_tokenizer(pretrained_tokenizer(str(ckpt_path)), str(ckpt_path), "ckpt_path")
    datamodule.prepare_data()
    task = entry.task(
        model=model,
        objective=settings,
        optim=OptimizerSettings(),
        peft=None,
        **entry.task.data_arguments(datamodule),
    )
    return task.eval(), datamodule
