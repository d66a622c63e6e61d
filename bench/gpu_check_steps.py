"""The steps of ``bench/gpu_check.py``: their sizes on a GPU and in the CPU dry run, every train.py
command they run (``all_commands``), what each measures and checks (``STEPS``).

The training steps drive the public command line only (``python train.py <overrides>``) and read
what a run writes; the tuning-method memory and decoding steps reuse ``bench/peft_memory.py`` and
``bench/decode_vs_hf.py`` in the step's own process.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_check_runs import Context, Outcome, Run, compare_losses, fmt

H200_BF16_PEAK = 989.4e12  # dense bf16 FLOP/s of an H200 SXM (the H100 SXM's), NVIDIA's datasheets
# ZeRO-2/3 against strategy=auto in fp32, a step's loss, relative: DeepSpeed's engine itself (stage 0
# too) trained a 1-layer GPT on the CPU within 8e-4 of plain torch over 30 AdamW steps, its stages
# identical to each other (a probe of deepspeed.initialize outside Lightning, 2026-12-04)
CURVE_TOLERANCE = 1e-2
FSDP_BF16_TOLERANCE = 5e-2  # FSDP computing in bf16 against the fp32 reference run
SAME_BUILD_TOLERANCE = 1e-5  # meta_init against a full build (one process: the same weights)
RESUME_TOLERANCE = 1e-4  # a resumed run against the uninterrupted one (bit-identical where deterministic)
TARGET_MFU = 0.45  # gpt2_small with compile=true
TARGET_MEMORY_RATIO = 0.35  # a tuning method's peak GPU memory against full fine-tuning's
TUNED = ("lora", "prefix", "adapter")  # the methods whose memory is compared with full fine-tuning


@dataclass(frozen=True)
class Shape:
    """A training run's size: tokens per sequence, sequences per batch, optimiser steps, and the
    ThroughputMonitor's window (rates over its last ``window`` steps, logged as often)."""

    seq_len: int
    batch: int
    steps: int
    window: int = 1


@dataclass(frozen=True)
class Mode:
    """The sizes and settings of the GPU run or of the dry run on the CPU."""

    dry: bool
    hardware: tuple[str, ...]  # overrides that put a run on the device
    data: tuple[str, ...]  # overrides of the corpus (the stdlib corpus; smaller in the dry run)
    shrink: tuple[str, ...]  # overrides that make any preset tiny (dry run)
    shapes: dict[str, Shape]  # by preset; "curve": gpt_mini's strategy comparisons and exact resume
    stop_at: int  # the step a SIGTERM stops a run at (ZeRO-3 resume, exact resume)
    lora_steps: int
    lora_rank: int
    peft_preset: str
    peft_shapes: tuple[
        tuple[int, int], ...
    ]  # (sequences, tokens) of the memory cases; checkpointing: the first
    decode: dict[str, Any]  # settings of bench/decode_vs_hf.py
    budget: float  # seconds for all the steps together
    min_start: float  # a step starts only with this many seconds of the budget left
    deepspeed_stand_in: str | None = None  # the strategy that runs the DeepSpeed step's runs instead

    def tiny(self, preset: str) -> list[str]:
        """The overrides that shrink ``preset`` in the dry run (LLaMA presets: 1 key/value head)."""
        if not self.dry:
            return []
        return [*self.shrink, *(["model.n_kv_heads=1"] if "llama" in preset else [])]

    def zero(self, stage: int) -> str:
        """The strategy preset of ZeRO stage ``stage`` (its stand-in in the dry run)."""
        return self.deepspeed_stand_in or f"deepspeed_zero{stage}"


GPU = Mode(
    dry=False,
    hardware=("trainer=gpu",),
    data=(),
    shrink=(),
    shapes={
        "gpt2_small": Shape(1024, 32, 100, 20),
        "tinyllama_1b": Shape(2048, 8, 20, 10),
        "bert_base": Shape(128, 256, 60, 20),
        "curve": Shape(256, 16, 30),
    },
    stop_at=15,
    lora_steps=10,
    # each LoRA matrix 512 x 256 = 131,072 numbers (a rank-64 LoRA of a 2048-wide model): past the
    # 1e5 under which ZeRO-3 keeps a tensor whole (DeepSpeed's param persistence threshold)
    lora_rank=512,
    peft_preset="bert_base",
    peft_shapes=((8, 128), (32, 512)),
    decode={"models": ["gpt2_small"], "vocab_size": 50257, "new_tokens": 256, "repeats": 2},
    budget=480,
    min_start=20,
)
DRY = Mode(
    dry=True,
    hardware=("trainer=cpu",),
    data=("data.corpus.max_documents=300",),
    shrink=("model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_layers=1"),
    shapes={
        "gpt2_small": Shape(32, 4, 4, 2),
        "tinyllama_1b": Shape(32, 4, 4, 2),
        "bert_base": Shape(32, 4, 4, 2),
        "curve": Shape(32, 4, 6),
    },
    stop_at=3,
    lora_steps=2,
    lora_rank=8,
    peft_preset="bert_tiny",
    peft_shapes=((2, 16),),
    decode={"models": ["gpt_tiny"], "vocab_size": 512, "new_tokens": 8, "repeats": 1},
    budget=1200,
    min_start=5,
    deepspeed_stand_in="auto",  # DeepSpeed is refused on a CPU; the step's own logic still runs
)

# Runs that only measure: no checkpoint files, no validation.
NO_CHECKPOINTS = (
    "callbacks.model_checkpoint=null",
    "callbacks.last_checkpoint=null",
    "+trainer.enable_checkpointing=false",
)
NO_VALIDATION = ("+trainer.limit_val_batches=0",)


def sigterm_at(step: int) -> list[str]:
    """The overrides that make a run send itself SIGTERM, so that it saves and stops at ``step``."""
    return ["+callbacks.stop._target_=signal_at_step.SignalAtStep", f"+callbacks.stop.step={step}"]


# --- every train.py command of the check -------------------------------------------------------


def throughput_overrides(mode: Mode, preset: str, *extra: str) -> list[str]:
    shape = mode.shapes[preset]
    return [
        f"model={preset}",
        *mode.hardware,
        "precision=bf16-mixed",
        f"data.max_seq_len={shape.seq_len}",
        f"data.batch_size={shape.batch}",
        f"trainer.max_steps={shape.steps}",
        f"trainer.log_every_n_steps={shape.window}",
        f"callbacks.throughput.window_size={shape.window}",
        *NO_CHECKPOINTS,
        *NO_VALIDATION,
        *mode.data,
        *mode.tiny(preset),
        *extra,
    ]


def curve_overrides(mode: Mode, strategy: str, *extra: str, steps: int | None = None) -> list[str]:
    """gpt_mini in fp32 without dropout: runs whose losses can be compared step by step."""
    shape = mode.shapes["curve"]
    return [
        "model=gpt_mini",
        f"strategy={strategy}",
        *mode.hardware,
        "precision=32-true",
        "model.dropout=0",
        "model.attention_dropout=0",
        f"data.max_seq_len={shape.seq_len}",
        f"data.batch_size={shape.batch}",
        f"trainer.max_steps={steps or shape.steps}",
        "trainer.log_every_n_steps=1",
        *NO_CHECKPOINTS,
        *NO_VALIDATION,
        *mode.data,
        *mode.tiny("gpt_mini"),
        *extra,
    ]


def resume_overrides(mode: Mode, *extra: str) -> list[str]:
    """gpt_mini as a GPU user trains it (bf16-mixed, dropout on), deterministic where torch can be."""
    shape = mode.shapes["curve"]
    return [
        "model=gpt_mini",
        *mode.hardware,
        "precision=bf16-mixed",
        "trainer.deterministic=warn",
        f"data.max_seq_len={shape.seq_len}",
        f"data.batch_size={shape.batch}",
        f"trainer.max_steps={shape.steps}",
        "trainer.log_every_n_steps=1",
        *NO_CHECKPOINTS,
        *NO_VALIDATION,
        *mode.data,
        *mode.tiny("gpt_mini"),
        *extra,
    ]


def data_overrides(mode: Mode, preset: str) -> list[str]:
    """A plan-only run (nothing trains) that tokenises the corpus for ``preset``'s tokenizer kind."""
    return [
        f"model={preset}",
        "trainer=cpu",
        "plan=true",
        "plan_timed_steps=0",
        *mode.data,
        *mode.tiny(preset),
    ]


def all_commands(mode: Mode, checkpoint: str = "zero3/checkpoints/last.ckpt") -> dict[str, list[str]]:
    """Every train.py command of the check by run name (less the folders ``Context.train`` adds)."""
    stop, lora = mode.stop_at, ("peft=lora", f"peft.rank={mode.lora_rank}")
    return {
        "data_bpe": data_overrides(mode, "gpt_mini"),
        "data_wordpiece": data_overrides(mode, "bert_small"),
        "gpt2_small": throughput_overrides(mode, "gpt2_small"),
        "gpt2_small_compile": throughput_overrides(mode, "gpt2_small", "compile=true"),
        "tinyllama_1b": throughput_overrides(mode, "tinyllama_1b"),
        # on the GPU the MLM + NSP batches are built by worker processes (masking costs CPU time)
        "bert_base": throughput_overrides(mode, "bert_base", *([] if mode.dry else ["data.num_workers=4"])),
        "reference": curve_overrides(mode, "auto"),
        "lora_auto": curve_overrides(mode, "auto", *lora, steps=mode.lora_steps),
        "zero2": curve_overrides(mode, mode.zero(2)),
        "zero3": curve_overrides(mode, mode.zero(3), *sigterm_at(stop)),
        "zero3.resumed": curve_overrides(mode, mode.zero(3), "resume=auto"),
        "zero3_ckpt_path": curve_overrides(mode, mode.zero(3), f"ckpt_path={checkpoint}"),
        "zero3_lora": curve_overrides(mode, mode.zero(3), *lora, steps=mode.lora_steps),
        "fsdp_bf16": curve_overrides(mode, "fsdp", "trainer.strategy.param_dtype=bfloat16"),
        "fsdp_bf16_meta": curve_overrides(
            mode, "fsdp", "trainer.strategy.param_dtype=bfloat16", "trainer.strategy.meta_init=true"
        ),
        "whole": resume_overrides(mode),
        "preempted": resume_overrides(mode, *sigterm_at(stop)),
        "preempted.resumed": resume_overrides(mode, "resume=auto"),
    }


# --- environment and data ------------------------------------------------------------------------


def bf16_peak(device_name: str) -> tuple[float | None, str]:
    """The dense bf16 peak MFU is measured against, and where that number comes from.

    Lightning's table (``get_available_flops``) does not serve an H200: torch names it "NVIDIA H200",
    which matches neither of Lightning's H200 entries ("sxm1", "nvl1"), and those give the rates with
    sparsity (2.0e15 for the SXM), twice the dense rate."""
    override = os.environ.get("GPU_CHECK_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12, "GPU_CHECK_PEAK_TFLOPS"
    name = device_name.lower()
    if "h200" in name and "nvl" not in name:
        return H200_BF16_PEAK, "H200 SXM dense bf16, NVIDIA's datasheet (as the H100 SXM)"
    import torch
    from lightning.fabric.utilities.throughput import get_available_flops

    peak = get_available_flops(torch.device("cuda"), torch.bfloat16)
    return (float(peak), "Lightning's table (get_available_flops)") if peak else (None, "unknown")


def installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def step_environment(ctx: Context, out: Outcome) -> None:
    import torch

    packages = ("torch", "lightning", "hydra-core", "omegaconf", "deepspeed", "transformers", "tokenizers")
    fig = out.figures
    fig.update(python=platform.python_version(), **{p: installed(p) for p in packages})
    fig["torch_cuda"] = torch.version.cuda
    for module in ("hydra", "omegaconf", "deepspeed"):  # what the carried wheels bring
        try:
            __import__(module)
            ok, detail = True, ""
        except Exception as error:  # a wheel that does not import on this machine
            ok, detail = False, f"{type(error).__name__}: {error}".splitlines()[0]
        if ctx.cuda or module != "deepspeed":  # the dry run needs no DeepSpeed
            out.check(f"`import {module}`", ok, detail)
    found: dict[str, Any] = {"peak_flops": None, "peak_source": "no CUDA GPU", "matmul_flops": None}
    if not ctx.cuda:
        fig["device"] = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
        out.skip_part("the GPU's name, bf16, flash attention, a bf16 matrix product", "dry run on the CPU")
        out.headline = f"CPU; torch {torch.__version__}"
    elif out.check("a CUDA GPU is visible", torch.cuda.is_available()):
        properties = torch.cuda.get_device_properties(0)
        fig.update(
            device=properties.name,
            capability=f"{properties.major}.{properties.minor}",
            memory_gib=properties.total_memory / 2**30,
            cudnn=torch.backends.cudnn.version(),
            driver=nvidia_smi("driver_version"),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
        out.check("bf16 supported", fig["bf16_supported"])
        out.check("SDPA's flash attention kernel runs (bf16, causal)", *flash_attention_runs())
        found["matmul_flops"] = bf16_matmul_flops()
        found["peak_flops"], found["peak_source"] = bf16_peak(properties.name)
        from lightning.fabric.utilities.throughput import get_available_flops

        lightning_peak = get_available_flops(torch.device("cuda"), torch.bfloat16)
        fig.update(
            matmul_bf16_tflops=found["matmul_flops"] / 1e12,
            peak_bf16_tflops=found["peak_flops"] / 1e12 if found["peak_flops"] else None,
            peak_source=found["peak_source"],
            lightning_peak_bf16_tflops=lightning_peak / 1e12 if lightning_peak else None,
        )
        out.headline = (
            f"{properties.name}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"bf16 matmul {fig['matmul_bf16_tflops']:.0f} TFLOP/s"
        )
    (ctx.work / "environment.json").write_text(json.dumps(found))
    out.lines += [f"- {key}: {value}" for key, value in fig.items()]


def nvidia_smi(query: str) -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def flash_attention_runs() -> tuple[bool, str]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 12, 1024, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.cuda.synchronize()
    except RuntimeError as error:
        return False, str(error).splitlines()[0]
    return True, ""


def bf16_matmul_flops(n: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n bf16 matrix product of random data (``repeats`` after 3 warm-ups)."""
    import torch

    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3)


TOKENISED = re.compile(r"tokenised (\d+) documents, (\d+) sentences, (\d+) tokens")


def step_data(ctx: Context, out: Outcome) -> None:
    commands = all_commands(ctx.mode)
    names = ("data_bpe", "data_wordpiece")
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two tokenizers at once
        runs = list(pool.map(lambda name: ctx.train(name, commands[name], cap=180), names))
    said = []
    for run in runs:
        kind = run.name.removeprefix("data_")
        if out.run_ok(run, f"the corpus is tokenised for {kind}"):
            found = TOKENISED.search(run.log.read_text(errors="replace"))  # absent when cached already
            out.figures[f"{kind}_tokens"] = int(found.group(3)) if found else None
            out.figures[f"{kind}_seconds"] = run.seconds
            said.append(f"{kind}: {fmt(out.figures[f'{kind}_tokens'])} tokens in {run.seconds:.0f} s")
    out.headline = ", ".join(said)


# --- throughput -----------------------------------------------------------------------------------


def throughput_figures(ctx: Context, run: Run, shape: Shape, out: Outcome) -> None:
    """tokens/s, TFLOP/s, MFU (against the datasheet peak and against the measured matrix-product
    rate) and peak memory: the last values the ThroughputMonitor and PeakMemory logged."""
    found = ctx.environment()
    flops = run.last("train/device/flops_per_sec")
    fig = out.figures
    fig.update(
        tokens_per_s=run.last("train/device/items_per_sec"),
        tflops=flops / 1e12 if flops else None,
        mfu=flops / found["peak_flops"] if flops and found.get("peak_flops") else None,
        mfu_of_measured_matmul=flops / found["matmul_flops"] if flops and found.get("matmul_flops") else None,
        lightning_mfu=run.last("train/device/mfu"),
        peak_memory_gb=run.last("train/peak_memory_gb"),
        final_loss=run.last("train/loss"),
        parameters=run.result().get("parameters"),
        wall_seconds=run.seconds,
    )
    out.check("the ThroughputMonitor logged tokens/s", fig["tokens_per_s"] is not None)
    loss = fig["final_loss"]
    out.check("the training loss is finite", loss is not None and math.isfinite(loss), f"last loss {loss}")
    mfu = fmt(fig["mfu"], ".1%")
    out.headline = (
        f"{fmt(fig['tokens_per_s'])} tokens/s, {fmt(fig['tflops'], '.1f')} TFLOP/s, MFU {mfu}, "
        f"peak memory {fmt(fig['peak_memory_gb'], '.1f')} GB"
    )
    out.lines += [
        f"{shape.batch} x {shape.seq_len} tokens, {shape.steps} steps; rates over the last "
        f"{shape.window} steps. Parameters (with the vocabulary of the run's tokenizer): "
        f"{fmt(fig['parameters'])}.",
        "",
        "| tokens/s | TFLOP/s | MFU | MFU of the measured matmul rate | Lightning's MFU | peak memory |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {fmt(fig['tokens_per_s'])} | {fmt(fig['tflops'], '.1f')} | {mfu} | "
        f"{fmt(fig['mfu_of_measured_matmul'], '.1%')} | {fmt(fig['lightning_mfu'], '.1%')} | "
        f"{fmt(fig['peak_memory_gb'], '.2f')} GB |",
    ]


def throughput_step(run_name: str, preset: str, cap: float) -> Callable[[Context, Outcome], None]:
    """A step that trains ``preset`` (the run ``run_name`` of ``all_commands``) for its throughput."""

    def step(ctx: Context, out: Outcome) -> None:
        run = ctx.train(run_name, all_commands(ctx.mode)[run_name], cap=cap)
        if out.run_ok(run):
            throughput_figures(ctx, run, ctx.mode.shapes[preset], out)

    return step


def step_gpt2_small_compile(ctx: Context, out: Outcome) -> None:
    throughput_step("gpt2_small_compile", "gpt2_small", cap=230)(ctx, out)
    mfu = out.figures.get("mfu")
    met = None if mfu is None else mfu >= TARGET_MFU
    out.figures["target_mfu_met"] = met
    eager = ctx.step_record("gpt2_small").get("figures", {}).get("tokens_per_s")
    compiled = out.figures.get("tokens_per_s")
    if eager and compiled:
        out.figures["speedup_over_eager"] = compiled / eager
        out.headline += f", {compiled / eager:.2f}x eager"
    out.lines += ["", f"Target: MFU >= {TARGET_MFU:.0%} with compile=true: {verdict(met)}."]


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "missed")


# --- strategies -----------------------------------------------------------------------------------


def peft_files(folder: Path) -> dict[str, tuple[int, ...]]:
    """The tensors a tuning method saved in ``folder`` (its ``*.safetensors``): name -> shape."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is no dict)
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def check_method_weights(
    out: Outcome, run: Run, what: str, like: dict[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, ...]]:
    """The run saved its tuning method's weights alone (``peft/``): tensors none of which is empty,
    as many numbers as train (``result.json``; a ZeRO-3 run counts its partitions there, so it is
    given ``like``: the names and shapes a run under strategy=auto saved)."""
    shapes = peft_files(run.folder / "peft")
    numbers = sum(math.prod(shape) for shape in shapes.values())
    result = run.result()
    trainable = round(result.get("trainable_pct", 0) * result.get("parameters", 0) / 100)
    out.figures[f"{what}_saved_tensors"] = len(shapes)
    out.figures[f"{what}_saved_numbers"] = numbers
    empty = [key for key, shape in shapes.items() if math.prod(shape) == 0]
    out.check(
        f"{what}: peft/ holds the method's tensors, none empty",
        bool(shapes) and not empty,
        f"{len(shapes)} tensors, {numbers:,} numbers" + (f"; empty: {empty[:3]}" if empty else ""),
    )
    if like is None:
        out.check(
            f"{what}: the saved tensors are the trained ones alone",
            abs(numbers - trainable) <= 1,
            f"{numbers:,} saved, {trainable:,} of {result.get('parameters', 0):,} parameters train",
        )
    if like is not None:
        out.check(f"{what}: the same names and shapes as under strategy=auto", shapes == like)
    return shapes


def step_deepspeed(ctx: Context, out: Outcome) -> None:
    commands = all_commands(ctx.mode)
    if ctx.mode.deepspeed_stand_in:
        out.skip_part(
            "DeepSpeed itself",
            "it runs on CUDA GPUs only (lmforge refuses it on a CPU before any work); "
            f"strategy={ctx.mode.deepspeed_stand_in} stands in for it, so that the step's own runs and "
            "checks run",
        )
    lora_auto = ctx.train("lora_auto", commands["lora_auto"], cap=120)
    auto_shapes = check_method_weights(out, lora_auto, "lora_auto") if out.run_ok(lora_auto) else None
    reference = ctx.train_once("reference", commands["reference"], cap=120)
    if not out.run_ok(reference):
        return
    zero2 = ctx.train("zero2", commands["zero2"], cap=150)
    if out.run_ok(zero2):
        compare_losses(
            out, "zero2", "ZeRO-2 against auto", reference.losses(), zero2.losses(), CURVE_TOLERANCE
        )
        out.figures["zero2_tokens_per_s"] = zero2.last("train/device/items_per_sec")
    zero3 = zero3_resume(ctx, out, reference.losses())
    if zero2.ok and zero3:  # two ways of one computation on one GPU: how far apart the stages are
        compare_losses(out, "zero3_zero2", "ZeRO-3 against ZeRO-2", zero2.losses(), zero3, None)
    zero3_lora = ctx.train("zero3_lora", commands["zero3_lora"], cap=150)
    if out.run_ok(zero3_lora):
        check_method_weights(out, zero3_lora, "zero3_lora", like=auto_shapes)
    out.headline = (
        f"largest relative loss difference to auto: ZeRO-2 "
        f"{fmt(out.figures.get('zero2_max_relative_difference'), '.1e')}, ZeRO-3 "
        f"{fmt(out.figures.get('zero3_max_relative_difference'), '.1e')}"
    )


def zero3_resume(ctx: Context, out: Outcome, expected: dict[int, str]) -> dict[int, str]:
    """ZeRO-3 stopped by SIGTERM at ``stop_at`` (its checkpoint is a DeepSpeed folder), then
    ``resume=auto`` in the same folder; should that start over, an explicit ``ckpt_path`` is tried.
    Returns the losses of the whole ZeRO-3 curve ({} when it did not run to the end)."""
    commands, stop = all_commands(ctx.mode), ctx.mode.stop_at
    first = ctx.train("zero3", commands["zero3"], cap=150)
    if not out.run_ok(first, f"ZeRO-3 sent SIGTERM at step {stop} saves and exits with status 0"):
        return {}
    checkpoint = first.folder / "checkpoints" / "last.ckpt"
    out.check("ZeRO-3: checkpoints/last.ckpt was written", checkpoint.exists())
    rest = ctx.train("zero3", commands["zero3.resumed"], cap=150, log_name="zero3.resumed")
    if not out.run_ok(rest):
        return {}
    start = rest.first_step()
    out.figures["zero3_resumed_at_step"] = start
    if out.check(
        "ZeRO-3: resume=auto goes on from the checkpoint", start == stop, f"it went on at step {start}"
    ):
        both = {**first.losses(), **rest.losses()}
        compare_losses(
            out, "zero3", "ZeRO-3 stopped and resumed against auto", expected, both, CURVE_TOLERANCE
        )
        return both
    compare_losses(
        out, "zero3", "ZeRO-3 (run again from step 0) against auto", expected, rest.losses(), CURVE_TOLERANCE
    )
    explicit = ctx.train(
        "zero3_ckpt_path", all_commands(ctx.mode, str(checkpoint))["zero3_ckpt_path"], cap=120
    )
    if out.run_ok(explicit, "ZeRO-3: ckpt_path= naming the checkpoint folder is accepted"):
        went_on = explicit.first_step()
        out.check(
            "ZeRO-3: ckpt_path= goes on from the checkpoint", went_on == stop, f"it went on at step {went_on}"
        )
    return rest.losses()


def step_fsdp(ctx: Context, out: Outcome) -> None:
    commands = all_commands(ctx.mode)
    reference = ctx.train_once("reference", commands["reference"], cap=120)
    if not out.run_ok(reference):
        return
    bf16 = ctx.train("fsdp_bf16", commands["fsdp_bf16"], cap=120)
    if out.run_ok(bf16):
        compare_losses(
            out,
            "fsdp_bf16",
            "FSDP bf16 against auto fp32",
            reference.losses(),
            bf16.losses(),
            FSDP_BF16_TOLERANCE,
        )
        out.figures["fsdp_bf16_tokens_per_s"] = bf16.last("train/device/items_per_sec")
        out.figures["fsdp_bf16_peak_memory_gb"] = bf16.last("train/peak_memory_gb")
    meta = ctx.train("fsdp_bf16_meta", commands["fsdp_bf16_meta"], cap=120)
    if out.run_ok(meta) and bf16.ok:
        compare_losses(
            out,
            "meta_init",
            "meta_init against a full build",
            bf16.losses(),
            meta.losses(),
            SAME_BUILD_TOLERANCE,
        )
    out.headline = (
        f"bf16 against fp32 auto: {fmt(out.figures.get('fsdp_bf16_max_relative_difference'), '.1e')}; "
        f"meta_init bit-identical: {out.figures.get('meta_init_identical')}"
    )


# --- memory and decoding (in this process) ---------------------------------------------------------


def step_peft_memory(ctx: Context, out: Outcome) -> None:
    import peft_memory
    import torch

    device = "cuda" if ctx.cuda else "cpu"
    methods = ("none", *TUNED)
    cases = [
        (shape, checkpointing, method)
        for index, shape in enumerate(ctx.mode.peft_shapes)
        for checkpointing in ((False, True) if index == 0 else (False,))
        for method in methods
    ]
    rows = []
    for (batch, seq_len), checkpointing, method in cases:
        if ctx.time_left() < 10:
            out.skip_part(f"{method} at {batch} x {seq_len}", "out of time")
            continue
        row = peft_memory.measure(
            method, checkpointing, 2, batch, seq_len, preset=ctx.mode.peft_preset, device=device
        )
        rows.append({**row, "shape": f"{batch}x{seq_len}"})
        gc.collect()  # the case's tensors go before the next one starts counting
        if ctx.cuda:
            torch.cuda.empty_cache()
    full = {row["shape"]: row["peak"] for row in rows if row["method"] == "none" and not row["checkpointing"]}
    peak = (
        "GiB of GPU memory allocated (max_memory_allocated, from the case's start)"
        if ctx.cuda
        else "GiB resident (the process's peak, which only grows: the dry run's ratios mean nothing)"
    )
    out.lines += [
        f"`{ctx.mode.peft_preset}` sequence classification (bench/peft_memory.py's settings), 2 steps of "
        f"forward + backward + AdamW in fp32; peak in {peak}. Ratio: against full fine-tuning of the "
        "same shape without checkpointing.",
        "",
        "| shape | method | checkpointing | trainable | peak | ratio | target |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = row["peak"] / full[row["shape"]] if row["shape"] in full else None
        tuned = row["method"] in TUNED
        met = ratio <= TARGET_MEMORY_RATIO if tuned and ratio is not None and ctx.cuda else None
        key = f"{row['method']}_{row['shape']}" + ("_checkpointing" if row["checkpointing"] else "")
        out.figures[f"{key}_peak_gib"] = row["peak"] / 2**30
        out.figures[f"{key}_ratio"] = ratio
        if tuned:
            out.figures[f"{key}_target_met"] = met
        target = f"<= {TARGET_MEMORY_RATIO}x: {verdict(met)}" if tuned else ""
        out.lines.append(
            f"| {row['shape']} | {row['method']} | {'yes' if row['checkpointing'] else 'no'} | "
            f"{row['trainable'] / row['total']:.2%} | {row['peak'] / 2**30:.2f} | {fmt(ratio, '.2f')}x | "
            f"{target} |"
        )
    out.check("every case ran", len(rows) == len(cases), f"{len(rows)} of {len(cases)} cases")
    shape = f"{ctx.mode.peft_shapes[0][0]}x{ctx.mode.peft_shapes[0][1]}"
    ratios = ", ".join(f"{m} {fmt(out.figures.get(f'{m}_{shape}_ratio'), '.2f')}x" for m in TUNED)
    out.headline = f"{shape}: {ratios} of full fine-tuning"


def step_decoding(ctx: Context, out: Outcome) -> None:
    import decode_vs_hf

    args = decode_vs_hf.decoding_settings(**ctx.mode.decode, device="cuda" if ctx.cuda else "cpu")
    ours, theirs = decode_vs_hf.WAYS[0], decode_vs_hf.WAYS[2]
    for name in args.models:
        result = decode_vs_hf.measure_model(name, args)
        rates = result["tokens_per_s"]
        out.figures.update({f"{name}: {way} tokens/s": rate for way, rate in rates.items()})
        out.figures[f"{name}: KV cache vs generate()"] = rates[ours] / rates[theirs]
        where = result["first_difference"][theirs]
        out.check(
            f"`{name}`: the same continuation as HF generate() (greedy, {args.new_tokens} tokens)",
            where is None,
            "identical" if where is None else f"first differs at new token {where}",
        )
        out.lines += [*decode_vs_hf.model_lines(result, args), ""]
        out.headline = (
            f"{fmt(rates[ours])} tokens/s with the KV cache, {rates[ours] / rates[theirs]:.2f}x generate()"
        )


# --- exact resume -----------------------------------------------------------------------------------


def step_exact_resume(ctx: Context, out: Outcome) -> None:
    commands, stop = all_commands(ctx.mode), ctx.mode.stop_at
    whole = ctx.train("whole", commands["whole"], cap=120)
    if not out.run_ok(whole):
        return
    first = ctx.train("preempted", commands["preempted"], cap=120)
    if not out.run_ok(first, f"a run sent SIGTERM at step {stop} saves and exits with status 0"):
        return
    out.check("checkpoints/last.ckpt was written", (first.folder / "checkpoints" / "last.ckpt").exists())
    rest = ctx.train("preempted", commands["preempted.resumed"], cap=120, log_name="preempted.resumed")
    if not out.run_ok(rest):
        return
    start = rest.first_step()
    out.figures["resumed_at_step"] = start
    out.check("resume=auto goes on from the checkpoint", start == stop, f"it went on at step {start}")
    both = {**first.losses(), **rest.losses()}
    compare_losses(
        out, "resume", "stopped and resumed against uninterrupted", whole.losses(), both, RESUME_TOLERANCE
    )
    identical = "bit-identical" if out.figures["resume_identical"] else "not bit-identical"
    out.headline = f"went on at step {start}; losses {identical} to the uninterrupted run's"


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    cap: float  # seconds on the GPU at most (the dry run's steps share its budget)
    run: Callable[[Context, Outcome], None]


STEPS = (
    Step("environment", "Environment", 90, step_environment),
    Step("data", "The stdlib corpus, tokenised for BPE and WordPiece", 150, step_data),
    Step("gpt2_small", "gpt2_small, bf16-mixed", 120, throughput_step("gpt2_small", "gpt2_small", 110)),
    Step("gpt2_small_compile", "gpt2_small, bf16-mixed, compile=true", 240, step_gpt2_small_compile),
    Step(
        "tinyllama_1b", "tinyllama_1b, bf16-mixed", 150, throughput_step("tinyllama_1b", "tinyllama_1b", 140)
    ),
    Step("bert_base", "bert_base MLM + NSP, bf16-mixed", 120, throughput_step("bert_base", "bert_base", 110)),
    Step("deepspeed", "DeepSpeed ZeRO-2 and ZeRO-3 on one GPU", 300, step_deepspeed),
    Step("fsdp", "FSDP2 on one GPU: param_dtype=bfloat16, meta_init", 150, step_fsdp),
    Step("exact_resume", "Exact resume after SIGTERM", 150, step_exact_resume),
    Step("peft_memory", "Memory of fine-tuning by tuning method", 150, step_peft_memory),
    Step("decoding", "Greedy decoding: KV cache against transformers' generate()", 150, step_decoding),
)
