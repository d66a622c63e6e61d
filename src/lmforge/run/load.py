"""A task rebuilt from one of our checkpoints, for inference: eval, generate, merge, export; and the
task a fine-tuning run from a checkpoint starts with (``untrained_start``), for zero-shot evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from tokenizers import Tokenizer

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import checkpoint_tokenizer, read_checkpoint
from lmforge.io.init_from import checkpoint_model, pretrained_tokenizer
from lmforge.objectives.settings import ObjectiveSettings
from lmforge.optim import OptimizerSettings
from lmforge.run.registry import OBJECTIVES, Objective
from lmforge.run.spec import check_model_family, data_spec
from lmforge.tasks import LanguageTask
from lmforge.tasks.base import model_config


def load_task(ckpt_path: str, device: torch.device | str = "cpu") -> tuple[Any, Tokenizer, dict[str, Any]]:
    """The task module, for inference (eval mode, encoders folded), on ``device``, its tokenizer, and
    the checkpoint itself."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    kind = hparams.get("objective", {}).get("kind")
    tokenizer = checkpoint_tokenizer(checkpoint, ckpt_path)
    if kind not in OBJECTIVES or tokenizer is None:
        raise ConfigError("ckpt_path", f"{ckpt_path} is not a checkpoint written by lmforge's train.py")
    task = OBJECTIVES[kind].task.rebuild(hparams, tokenizer)  # the checkpoint is read once, here
    task.load_state_dict(checkpoint["state_dict"], strict=task.strict_loading)
    fold = getattr(task.method, "fold", None)
    if fold is not None:  # prefix and p-tuning: their encoders' outputs become plain tensors for inference
        fold()
    return task.to(device).eval(), tokenizer, checkpoint


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
