"""``lmforge plot <run or sweep folders>``: training curves from the runs' CSV logs.

Each run folder holds ``csv/metrics.csv`` (conf/logger/csv.yaml); a sweep folder holds one run per
job. Every metric asked for gets a panel, every run a line, against the optimiser step. Needs
matplotlib (``pip install -e '.[plot]'``).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from pathlib import Path

METRICS_FILE = Path("csv") / "metrics.csv"
DEFAULT_METRICS = ("train/loss", "val/loss")
EXTRA_VAL_WORDS = ("acc", "f1")  # val metrics drawn by default besides the loss


def find_runs(folders: list[Path]) -> list[Path]:
    """Run folders with a metrics file: the folders themselves, or the jobs inside a sweep folder."""
    runs: list[Path] = []
    for folder in folders:
        if (folder / METRICS_FILE).is_file():
            runs.append(folder)
            continue
        jobs = sorted(p.parents[1] for p in folder.glob(f"*/{METRICS_FILE}"))
        if not jobs:
            raise SystemExit(f"error: {folder} holds no {METRICS_FILE}: give run folders or a sweep folder")
        runs.extend(jobs)
    return runs


def read_curves(run: Path) -> dict[str, list[tuple[float, float]]]:
    """(step, value) pairs of every column of a run's metrics.csv, empty cells skipped."""
    curves: dict[str, list[tuple[float, float]]] = {}
    with (run / METRICS_FILE).open(newline="") as file:
        for row in csv.DictReader(file):
            step = row.get("step")
            if not step:
                continue
            for name, value in row.items():
                if name in ("step", "epoch") or value in (None, ""):
                    continue
                number = float(value)
                if math.isfinite(number):
                    curves.setdefault(name, []).append((float(step), number))
    return curves


def run_label(run: Path, runs: list[Path]) -> str:
    """The job's overrides for sweep members (``.hydra/overrides.yaml``), else the folder name."""
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file() and len(runs) > 1:
        lines = [line[2:].strip() for line in overrides.read_text().splitlines() if line.startswith("- ")]
        if lines:
            return " ".join(lines)
    return run.name


def default_metrics(curves: list[dict[str, list]]) -> list[str]:
    names = {name for run in curves for name in run}
    extra = sorted(n for n in names if n.startswith("val/") and any(w in n for w in EXTRA_VAL_WORDS))
    return [n for n in DEFAULT_METRICS if n in names] + extra


def plot(folders: list[Path], out: Path, metrics: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = find_runs(folders)
    curves = [read_curves(run) for run in runs]
    names = metrics or default_metrics(curves)
    missing = [n for n in names if not any(n in run for run in curves)]
    if missing or not names:
        known = sorted({n for run in curves for n in run})
        raise SystemExit(f"error: no run logged {', '.join(missing) or 'a loss'}; logged: {', '.join(known)}")
    columns = 2 if len(names) == 4 else min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        for run, run_curves in zip(runs, curves, strict=True):
            points = run_curves.get(name)
            if points:
                steps, values = zip(*points, strict=True)
                style = "o-" if len(points) < 30 else "-"
                axis.plot(steps, values, style, markersize=3, label=run_label(run, runs))
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06 if len(labels) > 1 else 0, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def parser(prog: str = "lmforge plot") -> argparse.ArgumentParser:
    """The command's arguments (the docs check their commands against it)."""
    arguments = argparse.ArgumentParser(
        prog=prog, description="Draw training curves of runs from their CSV logs."
    )
    arguments.add_argument("folders", nargs="+", type=Path, help="run folders, or sweep folders of runs")
    arguments.add_argument(
        "--metrics",
        help="comma-separated metric names (default: train/loss, val/loss and val accuracy/F1 if logged)",
    )
    arguments.add_argument("--out", type=Path, help="the PNG to write (default: <first folder>/curves.png)")
    return arguments


def main(argv: Sequence[str] | None = None, prog: str = "lmforge plot") -> None:
    args = parser(prog).parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("error: drawing needs matplotlib: pip install -e '.[plot]'") from None
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    out = plot(args.folders, args.out or args.folders[0] / "curves.png", metrics)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
