"""The nine tuning methods from all-MiniLM-L6-v2 on one labeled set: one multirun, then each job's best
checkpoint (by val/acc) scored on the test split. Needs `make data-pretrained` and `make data-finetune`.

    OMP_NUM_THREADS=1 python bench/peft_minilm.py --data trec
    OMP_NUM_THREADS=1 python bench/peft_minilm.py --data movie_sentiment

Every method trains the same steps (``experiment=finetune_minilm``: 200 steps of 32 examples, validation
every 100), each at its preset learning rate (full fine-tuning: the experiment's ``optim.lr``). Writes
``bench/results/peft_minilm_<data>.md`` with the table and the commands; the runs stay under
``logs/finetune_minilm/multiruns/bench_<data>/<method>/``. Run again after an interruption, it trains only the
methods without a finished job there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, command, write_section

METHODS = ("none", "frozen", "bitfit", "adapter", "prompt", "ptuning", "prefix", "lora", "ia3")


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def finished(job: Path) -> bool:
    """Whether an earlier run of this script trained the job to its end (its result.json says so)."""
    result = job / "result.json"
    return result.is_file() and json.loads(result.read_text())["status"] == "finished"


def best_checkpoint(job: Path) -> Path:
    (best,) = (job / "checkpoints").glob("step*-val_acc*.ckpt")  # the one checkpoint kept by val/acc
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="trec", help="the labeled set (a data preset)")
    parser.add_argument("--methods", default=",".join(METHODS), help="the peft presets to compare")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for train.py")
    args = parser.parse_args()
    sweep = ROOT / "logs" / "finetune_minilm" / "multiruns" / f"bench_{args.data}"
    methods = args.methods.split(",")
    todo = [method for method in methods if not finished(sweep / method)]

    def train(peft: list[str]) -> list[str]:
        overrides = ["experiment=finetune_minilm", f"data={args.data}", f"peft={','.join(peft)}", *args.extra]
        return ["train.py", "-m", *overrides, f"hydra.sweep.dir={sweep}"]

    # one job folder per method (kept between runs of this script), no progress bar in the log
    quiet = ["hydra.sweep.subdir=${hydra:runtime.choices.peft}", "callbacks.rich_progress_bar=null"]
    started = time.time()
    if todo:
        run([*train(todo), *quiet])
    rows = []
    for method in methods:
        job = sweep / method
        result = json.loads((job / "result.json").read_text())
        if result["status"] != "finished":
            rows.append(f"| {method} | {result['status']}: {result.get('error', '')} | | | | |")
            continue
        report = job / "eval"
        run(
            [
                "eval.py",
                f"ckpt_path={best_checkpoint(job)}",
                f"hydra.run.dir={report}",
                "trainer.enable_progress_bar=false",
            ]
        )
        test = json.loads((report / "metrics.json").read_text())["metrics"]
        rows.append(
            f"| {method} | {result['best']:.4f} | {test['test/acc']:.4f} | {test['test/macro_f1']:.4f} | "
            f"{result['trainable_pct']:.2f} | {result['wall_seconds']:.0f} |"
        )
    minutes = (time.time() - started) / 60
    markdown = "\n".join(
        [
            f"## Tuning methods from all-MiniLM-L6-v2 on {args.data}",
            "",
            f"`{command()}` ({time.strftime('%Y-%m-%d')}, {minutes:.0f} min in all), which ran",
            "",
            f"`python {' '.join(train(methods))}` and",
            "`python eval.py ckpt_path=<each job's best checkpoint>`.",
            "",
            "| peft | best val/acc | test acc | test macro-F1 | trainable % | wall (s) |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section(f"peft_minilm_{args.data}", markdown)


if __name__ == "__main__":
    main()
