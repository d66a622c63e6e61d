"""What every task shares around its backbone: starting weights, the tuning method, what is saved.

A task builds its backbone and heads, then calls ``prepare_backbone``: the backbone (and heads that
have a pretrained counterpart) are loaded from ``model.init_from``, the ``peft`` method is applied,
and the trainable share is reported. With a method that freezes a pretrained backbone, checkpoints
hold only the trainable weights; the frozen rest is rebuilt from ``init_from`` when one is loaded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from lmforge.errors import ConfigError
from lmforge.io.init_from import load_pretrained
from lmforge.models import TransformerConfig, config_node
from lmforge.objectives.settings import ObjectiveSettings
from lmforge.optim import OptimizerSettings, configure_optimizers
from lmforge.peft import PeftSettings, apply_peft, parameter_counts, peft_settings
from lmforge.tasks.sharding import is_on_meta, shard_task

log = logging.getLogger("lmforge.tasks")

# What a task takes for each setting: checked settings (from a run's spec) or their plain form (a
# checkpoint's hyper_parameters, a test's dict).
ModelArg = TransformerConfig | Mapping[str, Any]
ObjectiveArg = ObjectiveSettings | Mapping[str, Any]
OptimArg = OptimizerSettings | Mapping[str, Any]
PeftArg = PeftSettings | Mapping[str, Any] | None

# Where tasks build their metrics, even inside a meta-device build (strategy meta_init): torchmetrics
# cannot refill its states after ``to_empty``. Lightning moves them to the accelerator with the task.
METRICS_DEVICE = torch.device("cpu")


def model_config(model: ModelArg) -> TransformerConfig:
    """A model config from checked settings or a ``_target_`` node (the conf group, a checkpoint's)."""
    return model if isinstance(model, TransformerConfig) else instantiate(dict(model))


def optimizer_settings(optim: OptimArg) -> OptimizerSettings:
    return optim if isinstance(optim, OptimizerSettings) else OptimizerSettings(**optim)


class LanguageTask(pl.LightningModule):
    """Base of our LightningModules: subclasses call ``take_settings``, build ``backbone`` and their
    heads, then ``prepare_backbone``.

    ``objective_type`` is the task's settings class; the objective registry (``lmforge.run.registry``)
    maps an ``objective.kind`` to the task. Checkpoints keep the settings as plain data
    (``hyper_parameters``), so ``Task(**hyper_parameters)`` rebuilds the module.
    """

    objective_type: ClassVar[type[ObjectiveSettings]]
    config: TransformerConfig
    objective: ObjectiveSettings
    backbone: nn.Module

    def take_settings(
        self, model: ModelArg, objective: ObjectiveArg, optim: OptimArg, peft: PeftArg, **data: Any
    ) -> tuple[OptimizerSettings, PeftSettings]:
        """Check the settings, keep them as ``hparams`` (plain data, for checkpoints) and set
        ``config`` and ``objective``; ``data`` are settings the data decided (label names)."""
        self.config = model_config(model)
        self.objective = self.objective_type.from_dict(objective)
        optim, peft = optimizer_settings(optim), peft_settings(peft)
        self.save_hyperparameters(
            {
                "model": config_node(self.config),
                "objective": self.objective.to_dict(),
                "optim": dataclasses.asdict(optim),
                "peft": peft.to_dict(),
                **data,
            }
        )
        return optim, peft

    @classmethod
    def rebuild(cls, hparams: dict[str, Any], tokenizer: Any) -> LanguageTask:
        """The task a checkpoint's ``hyper_parameters`` describe (its weights are loaded after)."""
        return cls(**hparams)

    @classmethod
    def data_arguments(cls, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """What the task takes from the prepared data besides the settings (a classifier: its labels)."""
        return {}

    def head_modules(self) -> list[nn.Module]:
        """The task's heads: trained by every tuning method."""
        return []

    def pretrained_targets(self) -> dict[str, nn.Module]:
        """Checkpoint prefix -> module to load from ``model.init_from`` (the backbone, at least)."""
        return {"backbone.": self.backbone}

    def optional_pretrained_targets(self) -> dict[str, nn.Module]:
        """Modules loaded from ``model.init_from`` only when it holds them in the same shapes."""
        return {}

    def prepare_backbone(self, optim: OptimizerSettings, peft: PeftSettings, tokenizer: Any = None) -> None:
        # On the meta device (meta_init, ranks but 0) there is nothing to load into: rank 0 sends it all.
        if self.config.init_from and not is_on_meta(self.backbone):
            load_pretrained(
                self.config.init_from,
                self.config,
                self.pretrained_targets(),
                self.config.init_strict,
                optional=self.optional_pretrained_targets(),
            )
        self.method = apply_peft(self.backbone, self.head_modules(), peft, tokenizer)
        if not any(p.requires_grad for p in self.parameters()):
            raise ConfigError(
                "peft.method",
                f"peft.method={self.method.name} leaves nothing to train in {type(self).__name__} (its "
                "head is the frozen token embedding): choose another method, e.g. peft=lora",
            )
        lr = self.method.lr if self.method.lr is not None else optim.lr
        self.optim = dataclasses.replace(optim, lr=lr)
        # Checkpoints then hold the trainable weights alone; loading one needs the rest from init_from.
        self.strict_loading = not self.saves_trainable_only

    def report(self) -> None:
        """Log the trainable share (and warn about a frozen backbone that was never trained)."""
        trainable, total = parameter_counts(self)
        log.info(
            "peft=%s: %s of %s parameters train (%.3f %%), peak learning rate %g",
            self.method.name,
            f"{trainable:,}",
            f"{total:,}",
            100 * trainable / max(1, total),
            self.optim.lr,
        )
        if self.freezes_backbone and not self.config.init_from:
            log.warning(
                "peft=%s freezes a backbone that was never trained (random weights): point model.init_from "
                "at a pretraining checkpoint, e.g. logs/pretrain/runs/<run>/checkpoints/last.ckpt",
                self.method.name,
            )

    @property
    def freezes_backbone(self) -> bool:
        return any(not p.requires_grad for p in self.backbone.parameters())

    @property
    def saves_trainable_only(self) -> bool:
        """A frozen backbone is saved only by reference, when it comes from a file that can be reread."""
        return self.freezes_backbone and bool(self.config.init_from)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["peft"] = {"method": self.method.name, "base": self.config.init_from}
        if getattr(self, "run_config", None):  # set by train(): what eval.py rebuilds the data from
            checkpoint["config"] = self.run_config
        if self.saves_trainable_only:
            keep = set(self.method.trainable_state_dict(self))
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy`` (strategy=fsdp): FSDP2 per Transformer block, then the root."""
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, ModelParallelStrategy):
            options = getattr(strategy, "fully_shard_options", {})
            mesh, broadcast = strategy.device_mesh["data_parallel"], getattr(strategy, "meta_init", False)
            shard_task(self, mesh, strategy.root_device, broadcast, **options)

    def configure_optimizers(self) -> dict:
        return configure_optimizers(self, self.optim)
