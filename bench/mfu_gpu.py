"""Model FLOPs utilisation of training ``gpt2_small`` and ``bert_base`` on a CUDA GPU, bf16, with and
without ``torch.compile``; on a machine without one it writes a line saying so and exits cleanly.

Each case trains our task (causal LM; MLM + NSP) in bf16 autocast with lmforge's AdamW, times the
median of ``--steps`` steps after warm-up (compilation happens in the warm-up), and divides the
achieved FLOP/s (the backbone's ``flops_per_token``, 6 N + 12 L d T) by the GPU's bf16 peak as
Lightning knows it (``get_available_flops``). ``compile`` compiles the backbone in place, as
``compile=true`` in ``train.py`` does.

Usage: python bench/mfu_gpu.py [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import command, model_settings, write_section
from lightning.fabric.utilities.throughput import get_available_flops

from lmforge.optim import OptimizerSettings, build_optimizer
from lmforge.tasks import BertPretraining, CausalLMPretraining

WARMUP = 5
CASES = {"gpt2_small": (8, 1024), "bert_base": (32, 512)}  # preset: (batch, sequence)
MASKED_SHARE = 0.15


def batch_for(preset: str, batch_size: int, seq_len: int, vocab: int, device: torch.device) -> dict:
    ids = torch.randint(5, vocab, (batch_size, seq_len + 1), device=device)
    if preset.startswith("bert"):
        labels = torch.full_like(ids[:, :-1], -100)
        masked = torch.rand(labels.shape, device=device) < MASKED_SHARE
        labels[masked] = ids[:, :-1][masked]
        return {
            "input_ids": ids[:, :-1],
            "token_type_ids": torch.zeros_like(labels),
            "attention_mask": torch.ones_like(labels),
            "labels": labels,
            "next_sentence_label": torch.randint(0, 2, (batch_size,), device=device),
        }
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}


def run_case(preset: str, compiled: bool, steps: int, device: torch.device) -> dict:
    batch_size, seq_len = CASES[preset]
    bert = preset.startswith("bert")
    model = model_settings(preset)
    task = (
        BertPretraining(model, {"nsp": True}, {"lr": 1e-4})
        if bert
        else CausalLMPretraining(model, {}, {"lr": 1e-4})
    )
    task.to(device).train()
    if compiled:
        task.backbone.compile()
    optimizer = build_optimizer(task, OptimizerSettings(lr=1e-4))
    batch = batch_for(preset, batch_size, seq_len, task.config.vocab_size, device)
    times = []
    for step in range(WARMUP + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = task.losses(batch)["loss"] if bert else task.loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    tokens_per_s = batch_size * seq_len / statistics.median(times)
    achieved = tokens_per_s * task.backbone.flops_per_token(seq_len)
    peak = get_available_flops(device, torch.bfloat16)
    return {
        "preset": preset,
        "compiled": compiled,
        "shape": f"{batch_size} x {seq_len}",
        "tokens_per_s": tokens_per_s,
        "tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    title = "## Model FLOPs utilisation on a CUDA GPU (bf16)"
    if not torch.cuda.is_available():
        write_section(
            "mfu_gpu", f"{title}\n\nSkipped: no CUDA GPU on this machine.\n\nCommand: `{command()}`"
        )
        return
    device = torch.device("cuda")
    rows = [run_case(preset, compiled, args.steps, device) for preset in CASES for compiled in (False, True)]
    lines = [
        title,
        "",
        f"{torch.cuda.get_device_name(device)}; bf16 autocast, lmforge's AdamW, median of {args.steps} steps "
        f"after {WARMUP} warm-up steps; FLOPs: the backbone's flops_per_token (6 N + 12 L d T).",
        "",
        "| model | compile | batch | tokens/s | TFLOP/s | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "(peak unknown)"
        lines.append(
            f"| `{row['preset']}` | {'yes' if row['compiled'] else 'no'} | {row['shape']} | "
            f"{row['tokens_per_s']:,.0f} | {row['tflops']:.1f} | {mfu} |"
        )
    lines += ["", f"Command: `{command()}`"]
    write_section("mfu_gpu", "\n".join(lines))


if __name__ == "__main__":
    main()
