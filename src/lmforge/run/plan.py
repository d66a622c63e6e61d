"""``plan=true``: what a run will cost, printed before any training, from the composed config.

The figures come from two places. Counting: parameters (total and trainable, after the tuning method),
FLOPs per token and tokens per optimiser step, and an estimate of memory per device from the model,
precision, optimiser, tuning method and strategy. Timing: a few real optimiser steps and validation
batches on this machine, which give the expected wall time of the whole run and a measured peak
memory to hold the estimate against.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from lmforge.run.build import build_task, build_trainer, keep_tokenizer, prepare_data
from lmforge.run.memory import current_resident_bytes, peak_bytes, reset_peak
from lmforge.run.spec import RunSpec
from lmforge.tasks.throughput import batch_tokens

log = logging.getLogger("lmforge.run.plan")

# Bytes per parameter, per gradient and per activation for each Lightning precision setting.
# Mixed precision keeps fp32 weights (and so fp32 gradients) and computes in 16 bits.
PRECISION_BYTES = {
    "32-true": (4, 4, 4),
    "32": (4, 4, 4),
    "64-true": (8, 8, 8),
    "bf16-mixed": (4, 4, 2),
    "16-mixed": (4, 4, 2),
    "bf16-true": (2, 2, 2),
    "16-true": (2, 2, 2),
}
ADAM_STATES = 2  # AdamW keeps two moments per trainable parameter, in the parameters' dtype
# What each family of strategy splits across devices (ZeRO stages; FSDP shards everything).
SHARDED = {
    "zero1": ("optimizer",),
    "zero2": ("optimizer", "gradients"),
    "zero3": ("optimizer", "gradients", "weights"),
    "fsdp": ("optimizer", "gradients", "weights"),
}


def strategy_name(strategy: Any) -> str:
    """A readable name for ``trainer.strategy``: a string, or a ``_target_`` node (with its ZeRO stage)."""
    if isinstance(strategy, DictConfig | dict):
        name = str(strategy.get("_target_", "custom")).rsplit(".", 1)[-1]
        stage = strategy.get("stage")
        return f"{name} zero{stage}" if stage else name
    return str(strategy)


def precision_bytes(precision: str) -> tuple[int, int, int]:
    key = str(precision)
    if key not in PRECISION_BYTES:
        raise ValueError(f"trainer.precision={key} is not one of {', '.join(PRECISION_BYTES)}")
    return PRECISION_BYTES[key]


def sharded_parts(strategy: str) -> tuple[str, ...]:
    """The model states a strategy splits across devices, from its name (ddp and auto split none)."""
    name = strategy.lower().replace("_", "").replace("-", "")
    for family, parts in SHARDED.items():
        if family in name or family.replace("zero", "stage") in name:
            return parts
    return ()


def activation_elements_per_token(backbone: Any) -> int:
    """Values one token keeps alive per layer until the backward pass, summed over the layers.

    Counted from the block as written: the attention sublayer keeps its norm output, the fused
    q/k/v, the rotated q and k (rotary), the attention output; the feed-forward keeps its norm output,
    the up projection, the activation (and with a gate the gate, the product); each sublayer's
    residual sum is kept too. Dropout masks are bytes and ignored; SDPA keeps no score matrix.
    """
    config = backbone.config
    d, f = config.d_model, config.d_ff
    kv = getattr(config, "kv_heads", config.n_heads) * config.head_dim
    attention = 3 * d + 2 * kv
    if getattr(config, "position", None) == "rope":
        attention += d + kv
    feed_forward = d + (4 * f if getattr(config, "gated", False) else 2 * f)
    residuals = 2 * d
    return config.n_layers * (attention + feed_forward + residuals) + 2 * d  # + embeddings and final norm


@dataclass
class MemoryEstimate:
    """Bytes per device; ``runtime`` is what the process holds before the model (CPU only)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    runtime: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.runtime

    def rows(self) -> list[tuple[str, int]]:
        return [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer (AdamW moments)", self.optimizer),
            ("activations", self.activations),
            ("logits and loss", self.logits),
            ("runtime (libraries, data)", self.runtime),
            ("total", self.total),
        ]


def estimate_memory(
    backbone: Any,
    total: int,
    trainable: int,
    precision: str,
    strategy: str,
    world_size: int,
    batch_size: int,
    seq_len: int,
    logit_positions: float,
    runtime: int,
) -> MemoryEstimate:
    """Memory per device for one training step at full width.

    ``logit_positions``: the share of positions scored over the whole vocabulary (1 for causal LM,
    the masking rate for masked LM, 0 for classification). Each scored position keeps the scores (in
    the activation dtype) and three fp32 rows: the log-softmax, its gradient and the scores' gradient.
    """
    param_bytes, grad_bytes, act_bytes = precision_bytes(precision)
    shards = sharded_parts(strategy)

    def split(part: str, size: float) -> int:
        return int(size / world_size) if part in shards else int(size)

    tokens = batch_size * seq_len
    vocab = backbone.config.vocab_size
    return MemoryEstimate(
        weights=split("weights", total * param_bytes),
        gradients=split("gradients", trainable * grad_bytes),
        optimizer=split("optimizer", trainable * param_bytes * ADAM_STATES),
        activations=int(tokens * activation_elements_per_token(backbone) * act_bytes),
        logits=int(tokens * logit_positions * vocab * (act_bytes + 12)),
        runtime=runtime,
    )


class StepTimer(Callback):
    """Times training steps after ``warmup`` of them, and validation batches; counts real tokens."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.step_times: list[float] = []
        self.val_times: list[float] = []
        self.tokens: list[int] = []
        self._start = 0.0
        self._seen = 0  # batches across epochs (batch_idx restarts each epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._seen += 1
        if self._seen > self.warmup:
            self.step_times.append(time.perf_counter() - self._start)
            self.tokens.append(batch_tokens(batch))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._sync(pl_module)
        self.val_times.append(time.perf_counter() - self._start)

    @staticmethod
    def _sync(pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def planned_steps(trainer_cfg: DictConfig, batches_per_epoch: int) -> int:
    """Optimiser steps the run will take by its step and epoch limits (the time limit is separate)."""
    accumulate = int(trainer_cfg.get("accumulate_grad_batches") or 1)
    limits = []
    if trainer_cfg.get("max_steps") not in (None, -1):
        limits.append(int(trainer_cfg.max_steps))
    if trainer_cfg.get("max_epochs") not in (None, -1):
        limits.append(int(trainer_cfg.max_epochs) * (batches_per_epoch // accumulate))
    return min(limits) if limits else 0


def validations(trainer_cfg: DictConfig, steps: int, batches_per_epoch: int) -> int:
    """How many validation passes a run of ``steps`` makes (one more at the end, as ours do)."""
    interval = trainer_cfg.get("val_check_interval")
    accumulate = int(trainer_cfg.get("accumulate_grad_batches") or 1)
    if isinstance(interval, int) and interval > 0:
        batches = steps * accumulate
        return batches // interval + (batches % interval != 0)
    return max(1, math.ceil(steps * accumulate / max(1, batches_per_epoch)))


def max_time_seconds(value: Any) -> float | None:
    """``trainer.max_time`` as seconds: "DD:HH:MM:SS", or a dict of days/hours/minutes/seconds."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        days, hours, minutes, seconds = (int(part) for part in value.split(":"))
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return float(
        sum(
            float(value.get(unit, 0)) * scale
            for unit, scale in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
        )
    )


def plan_run(spec: RunSpec) -> None:
    """``plan=true``: build the data and the task as the run would, print what the run will cost and
    write it to ``<run>/plan.json``; nothing is trained."""
    datamodule = prepare_data(spec)
    keep_tokenizer(spec, datamodule)
    runtime = current_resident_bytes()  # the process before the model: what a plan counts as runtime
    task = build_task(spec, datamodule)
    plan = run_plan(spec, task, datamodule, runtime)
    (spec.output_dir / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")


def run_plan(
    spec: RunSpec, task: pl.LightningModule, datamodule: pl.LightningDataModule, runtime: int
) -> dict[str, Any]:
    """Print the plan of the run ``spec`` describes and return its figures (also for ``plan.json``).

    ``runtime`` is what the process held before the model was built (counted on CPU only).
    """
    trainer_cfg = spec.trainer
    backbone = task.backbone
    total = sum(p.numel() for p in task.parameters())
    trainable = sum(p.numel() for p in task.parameters() if p.requires_grad)
    seq_len, batch_size = spec.data.max_seq_len, spec.data.batch_size
    devices = trainer_cfg.get("devices", 1)
    world = (devices if isinstance(devices, int) and devices > 0 else 1) * int(
        trainer_cfg.get("num_nodes") or 1
    )
    accumulate = int(trainer_cfg.get("accumulate_grad_batches") or 1)
    strategy = strategy_name(trainer_cfg.get("strategy", "auto"))
    precision = str(trainer_cfg.get("precision", "32-true"))
    on_gpu = str(trainer_cfg.get("accelerator", "auto")) in ("gpu", "cuda") or (
        str(trainer_cfg.get("accelerator", "auto")) == "auto" and torch.cuda.is_available()
    )
    memory = estimate_memory(
        backbone,
        total,
        trainable,
        precision,
        strategy,
        world,
        batch_size,
        seq_len,
        spec.objective_settings.scored_share(),
        0 if on_gpu else runtime,
    )

    timed, warmup = spec.plan_timed_steps, 2
    timing: dict[str, Any] = {}
    if timed > 0:
        timer = StepTimer(warmup)
        val_batches = 2
        trainer = build_trainer(
            spec,
            callbacks=[timer],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            max_steps=warmup + timed,
            max_epochs=-1,
            max_time=None,
            val_check_interval=warmup + timed,
            check_val_every_n_epoch=None,
            limit_val_batches=val_batches,
            num_sanity_val_steps=0,
            accumulate_grad_batches=1,
        )
        reset_peak(trainer.strategy.root_device)
        trainer.fit(task, datamodule=datamodule)
        step = sum(timer.step_times) / max(1, len(timer.step_times))
        val_step = sum(timer.val_times) / max(1, len(timer.val_times))
        batches_per_epoch = len(datamodule.train_dataloader())
        steps = planned_steps(trainer_cfg, batches_per_epoch)
        val_total = len(datamodule.val_dataloader())
        limit = trainer_cfg.get("limit_val_batches")
        if isinstance(limit, int) and not isinstance(limit, bool):
            val_total = min(val_total, limit)
        elif isinstance(limit, float):
            val_total = int(val_total * limit)
        passes = validations(trainer_cfg, steps, batches_per_epoch)
        seconds = steps * accumulate * step + passes * val_total * val_step
        budget = max_time_seconds(trainer_cfg.get("max_time"))
        timing = {
            "timed_steps": len(timer.step_times),
            "seconds_per_batch": step,
            "seconds_per_val_batch": val_step,
            "real_tokens_per_batch": sum(timer.tokens) / max(1, len(timer.tokens)),
            "planned_steps": steps,
            "validations": passes,
            "val_batches": val_total,
            "expected_seconds": min(seconds, budget) if budget else seconds,
            "max_time_seconds": budget,
            "measured_peak_bytes": peak_bytes(trainer.strategy.root_device),
        }

    plan = {
        "model": type(backbone).__name__,
        "parameters": total,
        "trainable": trainable,
        "flops_per_token": backbone.flops_per_token(seq_len),
        "seq_len": seq_len,
        "tokens_per_step": batch_size * seq_len * accumulate * world,
        "precision": precision,
        "strategy": strategy,
        "world_size": world,
        "memory": dict(memory.rows()),
        **timing,
    }
    print(format_plan(plan, batch_size, accumulate))
    return plan


def format_plan(plan: dict[str, Any], batch_size: int, accumulate: int) -> str:
    total, trainable = plan["parameters"], plan["trainable"]
    lines = [
        f"plan: {plan['model']}, precision {plan['precision']}, strategy {plan['strategy']}, "
        f"{plan['world_size']} device(s)",
        f"  parameters        {total / 1e6:,.2f} M, trainable {trainable / 1e6:,.2f} M "
        f"({100 * trainable / max(1, total):.2f} %)",
        f"  FLOPs per token   {plan['flops_per_token'] / 1e6:,.1f} MFLOP to train at {plan['seq_len']} "
        "tokens (6N + 12 L d T)",
        f"  tokens per step   {plan['tokens_per_step']:,} ({batch_size} x {plan['seq_len']} tokens x "
        f"{accumulate} accumulated x {plan['world_size']} device(s))",
        "  memory per device, estimated:",
    ]
    lines += [f"    {name:<28}{gigabytes(size):>10}" for name, size in plan["memory"].items()]
    if "seconds_per_batch" in plan:
        real = plan["real_tokens_per_batch"]
        lines += [
            f"  timed             {plan['timed_steps']} steps: {plan['seconds_per_batch']:.3f} s per batch "
            f"({real:,.0f} real tokens, {real / plan['seconds_per_batch']:,.0f} tokens/s), "
            f"{plan['seconds_per_val_batch']:.3f} s per validation batch",
            f"  measured peak     {gigabytes(plan['measured_peak_bytes'])} over the timed steps",
            f"  expected time     {duration(plan['expected_seconds'])} for {plan['planned_steps']:,} steps "
            "and "
            f"{plan['validations']} validations of {plan['val_batches']} batches"
            + (
                " (capped by trainer.max_time)"
                if plan["max_time_seconds"] and plan["expected_seconds"] == plan["max_time_seconds"]
                else ""
            ),
        ]
    lines.append("plan=true: nothing trained; drop plan=true to run")
    return "\n".join(lines)
