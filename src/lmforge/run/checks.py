"""Building from config nodes, and the checks of the ``trainer`` group (devices, strategy, precision,
budget), run by ``resolve`` before any work.

Each other group checks itself when its settings are built (``BertConfig``, the objective's and the
tuning method's settings, ``OptimizerSettings``, the DataModule); the trainer node goes to Lightning
as it is, so its mistakes are caught here, in one line, rather than deep inside ``Trainer``.
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from lmforge.errors import ConfigError, find_config_error

GPU_ACCELERATORS = ("gpu", "cuda")
# Lightning's (and ours built on them): they refuse a CPU accelerator
GPU_ONLY_STRATEGIES = ("DeepSpeedStrategy", "DeepSpeedZeroStrategy", "FSDPStrategy")
FP16_PRECISIONS = ("16", "16-mixed", "16-true")
PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true", "bf16", *FP16_PRECISIONS)
UNBOUNDED = (None, -1)


def check_trainer(trainer: DictConfig) -> None:
    """The trainer settings a run needs before Lightning sees them; one ``ConfigError`` each."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator",
            f"trainer.accelerator={trainer.accelerator} but this machine has no CUDA GPU: use trainer=cpu",
        )
    check_strategy(trainer)
    check_precision(trainer)
    check_budget(trainer)
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if not is_int(accumulate) or accumulate < 1:
        raise ConfigError(
            "trainer.accumulate_grad_batches",
            f"trainer.accumulate_grad_batches={accumulate!r} must be a whole number of batches, at least 1",
        )
    interval = trainer.get("val_check_interval")
    if interval is not None and not (is_number(interval) and interval > 0):
        raise ConfigError(
            "trainer.val_check_interval",
            f"trainer.val_check_interval={interval!r} must be a positive number of batches (or a fraction "
            "of an epoch, up to 1.0)",
        )
    every = trainer.get("log_every_n_steps", 50)
    if not is_int(every) or every < 1:
        raise ConfigError(
            "trainer.log_every_n_steps", f"trainer.log_every_n_steps={every!r} must be a whole number >= 1"
        )
    clip = trainer.get("gradient_clip_val")
    if clip is not None and not (is_number(clip) and clip >= 0):
        raise ConfigError(
            "trainer.gradient_clip_val",
            f"trainer.gradient_clip_val={clip!r} must be >= 0 (or null: no clipping)",
        )


def check_budget(trainer: DictConfig) -> None:
    """A run needs a bound, and a bound that lets it train at all."""
    steps, epochs, max_time = (
        trainer.get("max_steps", -1),
        trainer.get("max_epochs", -1),
        trainer.get("max_time"),
    )
    if steps in UNBOUNDED and epochs in UNBOUNDED and max_time is None:
        raise ConfigError(
            "trainer.max_steps",
            "none of trainer.max_steps, trainer.max_epochs, trainer.max_time is set: set one",
        )
    for key, value in (("max_steps", steps), ("max_epochs", epochs)):
        if value in UNBOUNDED:
            continue
        if not is_int(value) or value < 1:
            raise ConfigError(
                f"trainer.{key}",
                f"trainer.{key}={value!r} trains nothing: give a whole number >= 1 (or -1 to bound the run "
                "by the other limits)",
            )


def check_strategy(trainer: DictConfig) -> None:
    """Lightning's DeepSpeed and FSDP(1) strategies run on CUDA GPUs only: refuse them before any work."""
    strategy = trainer.get("strategy", "auto")
    if isinstance(strategy, DictConfig | dict):
        name = str(strategy.get("_target_", "")).rsplit(".", 1)[-1]
        shown = f"{name} (stage {strategy.stage})" if strategy.get("stage") else name
        gpu_only = name in GPU_ONLY_STRATEGIES
    else:  # Lightning's registered names: fsdp, fsdp_cpu_offload, deepspeed, deepspeed_stage_3, ...
        name = str(strategy)
        shown = f"trainer.strategy={name}"
        gpu_only = name.lower().startswith(("deepspeed", "fsdp"))
    if gpu_only and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.strategy",
            f"{shown} runs on CUDA GPUs only and this machine has none: use strategy=ddp_cpu (data "
            "parallel on 2 CPU processes) or strategy=fsdp trainer.accelerator=cpu trainer.devices=2 "
            "(FSDP2 through ModelParallelStrategy, which shards on CPUs too)",
        )


def check_precision(trainer: DictConfig) -> None:
    """A precision Lightning knows; and fp16 needs a CUDA GPU: on a CPU Lightning swaps ``16-mixed``
    for bf16 behind a warning, and ``16-true`` runs half-precision CPU kernels that are slow or
    missing. Refuse both up front."""
    precision = str(trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ConfigError(
            "trainer.precision",
            f"trainer.precision={precision} is not one of {', '.join(PRECISIONS)}",
        )
    if precision in FP16_PRECISIONS and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.precision",
            f"trainer.precision={precision} (fp16) needs a CUDA GPU and this machine has none: use "
            "trainer.precision=bf16-mixed, or 32-true",
        )


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting a target's ``ConfigError`` through unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        config_error = find_config_error(error)
        if config_error is None:
            raise
        raise config_error from None
