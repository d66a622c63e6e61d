"""Peak memory of fine-tuning ``bert_base`` with each tuning method, one fresh process per method.

Each case builds our ``SequenceClassification`` task on ``bert_base`` (random weights, the 30,522-token
vocabulary: memory does not depend on the values), applies the method through ``lmforge.peft`` as
``train.py`` does, and takes a few forward + backward + AdamW steps on 8 x 128 tokens, dropout on. The
figure is the process's peak resident set size (``VmHWM``), everything included: Python, torch, the
weights, gradients, optimiser states and activations. Two cases run at a time, one thread each.

The children run with a fixed glibc mmap threshold (``MALLOC_MMAP_THRESHOLD_``), so that every large
tensor goes back to the kernel when freed and the peak is what training holds at once. Under
glibc's default, or train.py's setting that keeps freed memory for speed (``lmforge.cli.runtime``), the
checkpointed cases' peaks grow by 0.25-0.3 GiB: each block's transient buffers leave holes in the
heap around the block outputs that checkpointing keeps.

Settings are those of ``conf/peft/<method>.yaml`` with the overrides in ``SETTINGS``, chosen so that
at most 1 % of the parameters train (the pooler and classifier alone are 0.54 %; prefix tuning's
reparameterisation MLP trains too, 9.5 M parameters at ``hidden=512``, so it is off here; adapters get
an 8-wide bottleneck instead of 64). Each case runs with and without ``model.activation_checkpointing``.

On a CUDA GPU (``measure(..., device="cuda")``, as ``bench/gpu_check.py`` calls it) the figure is
``torch.cuda.max_memory_allocated`` instead: the tensors alone, counted from the case's start.

Usage: OMP_NUM_THREADS=1 python bench/peft_memory.py [--steps 3] [--batch-size 8] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, command, model_settings, write_section

SETTINGS = {
    "none": {},
    "frozen": {},
    "lora": {},
    "prefix": {"reparameterize": False},
    "adapter": {"bottleneck": 8},
}
TUNED = ("lora", "prefix", "adapter")
# (method, activation checkpointing): each method as it comes, and with the backbone's activations
# recomputed in the backward pass, which is what brings a tuned method's memory down (see section())
CASES = [
    *((method, False) for method in SETTINGS),
    *((method, True) for method in SETTINGS if method != "frozen"),
]
MMAP_THRESHOLD = 128 * 1024  # glibc's starting value, fixed: blocks this large are mapped and unmapped
TARGET_RATIO = 0.35
TARGET_TRAINABLE = 0.01


def peak_rss() -> int:
    """This process's peak resident set size in bytes (``VmHWM`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def measure(
    method: str,
    checkpointing: bool,
    steps: int,
    batch_size: int,
    seq_len: int,
    preset: str = "bert_base",
    device: str = "cpu",
) -> dict[str, Any]:
    """One case, in this process: build, train ``steps`` steps, report the peak. On the CPU the peak
    is the process's resident set (give each case a fresh process); on a CUDA device it is the most
    memory allocated to tensors since the case started (the previous case's tensors must be freed)."""
    import torch
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    from lmforge.optim import build_optimizer
    from lmforge.peft import parameter_counts
    from lmforge.tasks.classification import SequenceClassification

    on = torch.device(device)
    if on.type == "cuda":
        torch.cuda.reset_peak_memory_stats(on)
        held_before = torch.cuda.memory_allocated(on)

        def peak() -> int:
            return torch.cuda.max_memory_allocated(on) - held_before
    else:
        peak = peak_rss

    torch.manual_seed(0)
    peft = {
        **OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "peft" / f"{method}.yaml")),
        **SETTINGS[method],
    }
    model = model_settings(preset, activation_checkpointing=checkpointing)
    task = SequenceClassification(model, {}, {"lr": 1e-4}, ["a", "b"], peft)
    task.to(on).train()
    optimizer = build_optimizer(task, task.optim)
    built = peak()
    vocab = task.config.vocab_size
    for step in range(steps):
        generator = torch.Generator().manual_seed(step)
        input_ids = torch.randint(5, vocab, (batch_size, seq_len), generator=generator).to(on)
        labels = torch.randint(0, 2, (batch_size,), generator=generator).to(on)
        logits = task(input_ids, torch.ones_like(input_ids), torch.zeros_like(input_ids))
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    trainable, total = parameter_counts(task)
    return {
        "method": method,
        "checkpointing": checkpointing,
        "peak": peak(),
        "built": built,
        "trainable": trainable,
        "total": total,
    }


def run_case(case: tuple[str, bool], args: argparse.Namespace) -> dict[str, Any]:
    """One case in a fresh process (its peak is its own)."""
    method, checkpointing = case
    child = [sys.executable, __file__, "--case", method, "--steps", str(args.steps)]
    child += ["--checkpointing"] if checkpointing else []
    child += ["--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
    done = subprocess.run(child, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    full = {row["checkpointing"]: row["peak"] for row in rows if row["method"] == "none"}
    lines = [
        "## Peak memory of fine-tuning `bert_base` by tuning method",
        "",
        f"`SequenceClassification` on `bert_base` (30,522-token vocabulary, 2 labels), {args.steps} steps of "
        f"forward + backward + AdamW on {args.batch_size} x {args.seq_len} tokens, fp32, dropout 0.1; one "
        "fresh process per case, peak resident set size (VmHWM) of the whole process, with a fixed glibc "
        f"mmap threshold of {MMAP_THRESHOLD // 1024} KiB so that freed tensors leave the process (train.py's "
        "malloc setting keeps them for speed, which adds 0.25-0.3 GiB of heap holes to the checkpointed "
        "cases: LoRA 1.18-1.23 GiB instead of about 0.93). Settings: `conf/peft/<method>.yaml`, with "
        "prefix tuning's reparameterisation off and an adapter bottleneck of 8 (at most 1 % of the "
        'parameters trainable; the pooler and the classifier alone are 0.54 %). "built" is the peak '
        "before the first step (Python, torch and the weights). Checkpointing: "
        "`model.activation_checkpointing=true`. The target (at most 0.35x) is against full fine-tuning "
        "without checkpointing.",
        "",
        "| method | checkpointing | trainable parameters | share | built | peak | of full fine-tuning | "
        "of full fine-tuning, both checkpointed | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["peak"] / full[False]
        like_for_like = f"{row['peak'] / full[True]:.2f}x" if row["checkpointing"] else ""
        share = row["trainable"] / row["total"]
        target = ""
        if row["method"] in TUNED:
            met = ratio <= TARGET_RATIO and share <= TARGET_TRAINABLE
            target = f"<= {TARGET_RATIO}x, <= 1 % ({'met' if met else 'missed'})"
        lines.append(
            f"| {row['method']} | {'yes' if row['checkpointing'] else 'no'} | {row['trainable']:,} | "
            f"{share:.2%} | {row['built'] / 2**30:.2f} GiB | {row['peak'] / 2**30:.2f} GiB | {ratio:.2f}x | "
            f"{like_for_like} | {target} |"
        )
    lines += ["", f"Command: `{command()}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=2, help="training steps per case (the second reaches the peak)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--case", choices=list(SETTINGS), help=argparse.SUPPRESS)  # a child's one case
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.checkpointing, args.steps, args.batch_size, args.seq_len)))
        return
    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(lambda case: run_case(case, args), CASES))
    write_section("peft_memory", section(rows, args))


if __name__ == "__main__":
    main()
