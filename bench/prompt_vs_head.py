"""Prompt-based against head-based fine-tuning from one BERT pretraining checkpoint: zero-shot, then K
examples per label (few-shot), several draws each; test accuracy and macro-F1, mean and spread.

    OMP_NUM_THREADS=1 python bench/prompt_vs_head.py --ckpt logs/pretrain/runs/<run>/checkpoints/last.ckpt

Zero-shot is ``eval.py`` with a template (prompt-based only: a new head knows nothing before training).
Each few-shot run draws K examples per label with ``data.split_seed`` (also the run's seed), trains both
ways with the same recipe (full fine-tuning, batches of 8, the same steps and learning rate), and the last
checkpoint is scored on the whole test split: no validation-based choice, as in true few-shot learning.
Writes ``bench/results/prompt_vs_head.md``; runs stay under ``logs/prompt_vs_head/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import ROOT, command, write_section

METHODS = {"head": ["objective=classify"], "prompt": ["objective=prompt_lm", "template={data}"]}
RECIPE = ["data.batch_size=8", "optim.lr=1e-4", "optim.warmup_ratio=0.1", "trainer.max_steps=200"]


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def scored(ckpt: str, report: Path, *extra: str) -> dict[str, float]:
    """Test metrics of ``ckpt`` (with ``extra``: zero-shot through a template), by eval.py."""
    if not (report / "metrics.json").is_file():
        run(
            [
                "eval.py",
                f"ckpt_path={ckpt}",
                *extra,
                f"hydra.run.dir={report}",
                "trainer.enable_progress_bar=false",
            ]
        )
    return json.loads((report / "metrics.json").read_text())["metrics"]


def fine_tuned(ckpt: str, data: str, method: str, shots: int, seed: int, out: Path) -> dict[str, float]:
    folder = out / f"{method}-{shots}shot-seed{seed}"
    if not (folder / "checkpoints" / "last.ckpt").is_file():
        overrides = [o.format(data=data) for o in METHODS[method]]
        run(
            [
                "train.py",
                f"data={data}",
                *overrides,
                f"model.init_from={ckpt}",
                f"data.shots_per_class={shots}",
                f"data.split_seed={seed}",
                f"seed={seed}",
                *RECIPE,
                "trainer.val_check_interval=200",
                f"hydra.run.dir={folder}",
                "callbacks.rich_progress_bar=null",
                "trainer.enable_progress_bar=false",
            ]
        )
    return scored(str(folder / "checkpoints" / "last.ckpt"), folder / "eval")


def spread(values: list[float]) -> str:
    return (
        f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
        if len(values) > 1
        else f"{values[0]:.3f}"
    )


def majority(data: str) -> float:
    labels = [json.loads(line)["label"] for line in (ROOT / "data" / "finetune" / data / "test.jsonl").open()]
    return Counter(labels).most_common(1)[0][1] / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a BERT pretraining checkpoint (objective mlm)")
    parser.add_argument(
        "--data", default="movie_sentiment,sms_spam", help="labeled sets with a template preset"
    )
    parser.add_argument("--shots", default="16,64", help="examples per label")
    parser.add_argument("--seeds", default="1,2,3", help="draws (data.split_seed and seed)")
    args = parser.parse_args()
    shots = [int(k) for k in args.shots.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.time()
    rows = []
    for data in args.data.split(","):
        out = ROOT / "logs" / "prompt_vs_head" / data
        zero = scored(args.ckpt, out / "zero_shot", f"data={data}", f"template={data}")
        for method in METHODS:
            cells = [f"{zero['test/acc']:.3f} / {zero['test/macro_f1']:.3f}" if method == "prompt" else "—"]
            for k in shots:
                runs = [fine_tuned(args.ckpt, data, method, k, seed, out) for seed in seeds]
                acc = spread([r["test/acc"] for r in runs])
                f1 = spread([r["test/macro_f1"] for r in runs])
                cells.append(f"{acc} / {f1}")
            rows.append(f"| {data} | {method} | " + " | ".join(cells) + " |")
        rows.append(f"| {data} | majority class | {majority(data):.3f} | | |")
    minutes = (time.time() - started) / 60
    header = " | ".join(f"{k}-shot" for k in shots)
    markdown = "\n".join(
        [
            "## Prompt-based against head-based fine-tuning",
            "",
            f"`{command()}` ({time.strftime('%Y-%m-%d')}, {minutes:.0f} min in all).",
            f"Test accuracy / macro-F1; few-shot: mean ± standard deviation over {len(seeds)} draws "
            f"(seeds {args.seeds}); recipe: "
            f"`{' '.join(RECIPE)}`, full fine-tuning, the last checkpoint.",
            "",
            f"| set | fine-tuning | zero-shot | {header} |",
            "|---|---|---|" + "---|" * len(shots),
            *rows,
        ]
    )
    write_section("prompt_vs_head", markdown)


if __name__ == "__main__":
    main()
