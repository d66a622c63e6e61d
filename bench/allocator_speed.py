"""Training with and without lmforge's malloc setting (``lmforge.cli.runtime.keep_freed_memory``).

Runs the same short ``train.py`` job (no validation, no checkpoint, no logger) in fresh processes,
alternating the two variants, and reports the median wall, user and system times of each. The
"without" variant sets ``MALLOC_ARENA_MAX=8`` (glibc's own default on 2 cores), which makes
lmforge leave malloc alone.

Usage: python bench/allocator_speed.py [--model gpt_tiny] [--steps 80] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(model: str, steps: int, extra_env: dict[str, str], run_dir: str) -> tuple[float, float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE", **extra_env}
    env = {k: v for k, v in env.items() if not (k.startswith("MALLOC_") and k not in extra_env)}
    args = [
        f"model={model}",
        f"trainer.max_steps={steps}",
        "+trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "~logger",
        "callbacks.model_checkpoint=null",
        "callbacks.last_checkpoint=null",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt_tiny")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    variants = {"with keep_freed_memory (lmforge)": {}, "glibc defaults": {"MALLOC_ARENA_MAX": "8"}}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    run_dir = f"/tmp/lmforge-allocator-bench-{os.getpid()}"
    for _ in range(args.repeats):
        for name, extra in variants.items():
            results[name].append(run(args.model, args.steps, extra, run_dir))
    print(f"{args.model}, {args.steps} training steps in a fresh process, median of {args.repeats}:")
    medians = {}
    for name, rows in results.items():
        wall, user, system = (statistics.median(column) for column in zip(*rows, strict=True))
        medians[name] = wall
        print(f"  {name:34s} {wall:6.1f} s wall  {user:6.1f} s user  {system:5.1f} s system")
    first, second = medians.values()
    print(f"  ratio: {second / first:.2f}x")


if __name__ == "__main__":
    main()
