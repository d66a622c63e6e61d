"""Checks across config groups, run after composition and before anything is read or built.

Each component also validates its own settings when it is built (``BertConfig``, the DataModule,
``OptimizerSettings``); what is checked here spans groups or concerns the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lmforge.errors import ConfigError, find_config_error
from lmforge.io.checkpoints import is_distributed_checkpoint, read_checkpoint
from lmforge.io.init_from import check_shapes, checkpoint_model
from lmforge.models import TransformerConfig, is_decoder

GPU_ACCELERATORS = ("gpu", "cuda")
# Lightning's (and ours built on them): they refuse a CPU accelerator
GPU_ONLY_STRATEGIES = ("DeepSpeedStrategy", "DeepSpeedZeroStrategy", "FSDPStrategy")
OBJECTIVE_KINDS = ("mlm", "clm", "classify")
FP16_PRECISIONS = ("16", "16-mixed", "16-true")


def check_config(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], f"{missing[0]} has no value: give one, e.g. `{missing[0]}=...`")

    seq_len, table = cfg.data.max_seq_len, cfg.model.max_seq_len
    if seq_len > table:
        raise ConfigError(
            "data.max_seq_len",
            f"data.max_seq_len={seq_len} exceeds the position table of the model "
            f"(model.max_seq_len={table}): lower data.max_seq_len or raise model.max_seq_len",
        )
    # prompt and p-tuning put their virtual tokens in front of the input: they take positions too
    n_virtual = (cfg.get("peft") or {}).get("n_virtual_tokens") or 0
    if seq_len + n_virtual > table:
        raise ConfigError(
            "peft.n_virtual_tokens",
            f"data.max_seq_len={seq_len} plus peft.n_virtual_tokens={n_virtual} exceeds the position "
            f"table of the model (model.max_seq_len={table}): lower one of them to fit",
        )

    trainer = cfg.trainer
    if str(trainer.get("accelerator", "auto")) in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator",
            f"trainer.accelerator={trainer.accelerator} but this machine has no CUDA GPU: use trainer=cpu",
        )
    check_strategy(trainer)
    check_precision(trainer)
    unbounded = (None, -1)
    if (
        trainer.get("max_steps", -1) in unbounded
        and trainer.get("max_epochs", -1) in unbounded
        and trainer.get("max_time") is None
    ):
        raise ConfigError(
            "trainer.max_steps",
            "none of trainer.max_steps, trainer.max_epochs, trainer.max_time is set: set one",
        )

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not (Path(ckpt_path).is_file() or is_distributed_checkpoint(ckpt_path)):
        raise ConfigError(
            "ckpt_path",
            f"ckpt_path={ckpt_path} is not a file: give a checkpoint (.ckpt) or a distributed one's folder",
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
    """fp16 needs a CUDA GPU: on a CPU Lightning swaps ``16-mixed`` for bf16 behind a warning, and
    ``16-true`` runs half-precision CPU kernels that are slow or missing. Refuse both up front."""
    precision = str(trainer.get("precision", "32-true"))
    if precision in FP16_PRECISIONS and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.precision",
            f"trainer.precision={precision} (fp16) needs a CUDA GPU and this machine has none: use "
            "trainer.precision=bf16-mixed, or 32-true",
        )


def check_model_objective(model: TransformerConfig, objective: dict[str, Any]) -> None:
    """An encoder trains with a masked-LM objective, a decoder with the causal-LM one; either classifies."""
    kind = objective.get("kind")
    if kind not in OBJECTIVE_KINDS:
        raise ConfigError(
            "objective.kind", f"objective.kind={kind!r} is not one of {', '.join(OBJECTIVE_KINDS)}"
        )
    if is_decoder(model) and kind == "mlm":
        raise ConfigError(
            "objective",
            f"{type(model).__name__} is a causal decoder and cannot train a masked-LM objective: use "
            "objective=clm (the default of decoder presets), or an encoder such as model=bert_tiny",
        )
    if not is_decoder(model) and kind == "clm":
        raise ConfigError(
            "objective",
            f"{type(model).__name__} is a bidirectional encoder and cannot train causal LM: use "
            "objective=mlm_nsp or objective=mlm, or a decoder such as model=gpt_tiny or model=llama_tiny",
        )


def check_tuning(model: TransformerConfig, objective: dict[str, Any], peft: dict[str, Any] | None) -> None:
    """``peft=frozen`` trains the heads alone, and a causal LM with tied embeddings has none of its own
    (its head is the token embedding): nothing would train. Said now, before the data is read; the
    task checks what trains once more when it is built (bitfit on a backbone without biases, say)."""
    method = (peft or {}).get("method")
    if method == "frozen" and objective.get("kind") == "clm" and getattr(model, "tie_embeddings", False):
        raise ConfigError(
            "peft.method",
            "peft.method=frozen leaves nothing to train in a causal LM with tied embeddings (its "
            "head is the frozen token embedding): choose another method, e.g. peft=lora, or set "
            "model.tie_embeddings=false",
        )


def check_resume_shape(model: TransformerConfig, ckpt_path: str) -> None:
    """A checkpoint of another shape would fail deep in Lightning's restore with a multi-line
    ``state_dict`` error, after the data was read: compare its recorded shape first."""
    saved = checkpoint_model(read_checkpoint(ckpt_path, weights=False))
    check_shapes(model, saved, ckpt_path, setting="ckpt_path")


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting a target's ``ConfigError`` through unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        config_error = find_config_error(error)
        if config_error is None:
            raise
        raise config_error from None
