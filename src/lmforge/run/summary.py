"""The table (and picture) that ends a multirun: one row per job, from each job's ``result.json``.

``SweepSummary`` is a Hydra callback (conf/hydra/default.yaml): at the end of ``python train.py -m ...``
it writes ``summary.csv``, ``summary.md`` and, with matplotlib installed, ``summary.png`` into the
sweep folder. ``lmforge summary <sweep folder>`` writes them again by hand (for a
sweep that was interrupted, or whose jobs ran elsewhere).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lmforge.run.results import read_results
from lmforge.run.tables import markdown_table, write_csv

log = logging.getLogger("lmforge.run.summary")

COLUMNS = (
    "job",
    "overrides",
    "status",
    "metric",
    "best",
    "trainable_pct",
    "tokens_per_sec",
    "peak_memory_gb",
    "wall_seconds",
    "error",
)


def varying_overrides(results: list[dict[str, Any]]) -> list[str]:
    """Each job's label: the overrides whose value differs between jobs (all of them if none do)."""
    parsed = [dict(o.split("=", 1) if "=" in o else (o, "") for o in r.get("overrides", [])) for r in results]
    keys = sorted({key for overrides in parsed for key in overrides})
    varying = [key for key in keys if len({overrides.get(key) for overrides in parsed}) > 1]
    shown = varying or keys
    return [" ".join(f"{key}={overrides[key]}" for key in shown if key in overrides) for overrides in parsed]


def rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels = varying_overrides(results)
    table = []
    for job, (result, label) in enumerate(zip(results, labels, strict=True)):
        row = {column: result.get(column) for column in COLUMNS}
        row["job"] = Path(result.get("output_dir", str(job))).name
        row["overrides"] = label
        table.append(row)
    return table


def cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column == "trainable_pct":
        return f"{value:.2f}"
    if column == "tokens_per_sec":
        return f"{value:,.0f}"
    if column == "wall_seconds":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown(table: list[dict[str, Any]]) -> str:
    metric = next((row["metric"] for row in table if row.get("metric")), "metric")
    headers = {
        "job": "job",
        "overrides": "overrides",
        "status": "status",
        "best": f"best {metric}",
        "trainable_pct": "trainable %",
        "tokens_per_sec": "tokens/s",
        "peak_memory_gb": "peak memory (GB)",
        "wall_seconds": "wall (s)",
        "error": "error",
    }
    shown = [c for c in headers if c != "error" or any(row.get("error") for row in table)]
    return markdown_table(
        [headers[c] for c in shown], [[cell(row.get(c), c) for c in shown] for row in table]
    )


def draw(table: list[dict[str, Any]], path: Path) -> bool:
    """The metric against trainable % and against tokens/s, one labelled point per finished job."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("summary.png skipped: matplotlib is missing (pip install -e '.[plot]')")
        return False
    done = [row for row in table if row["status"] == "finished" and row["best"] is not None]
    if not done:
        return False
    metric = done[0]["metric"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, column, label in (
        (axes[0], "trainable_pct", "trainable parameters (%)"),
        (axes[1], "tokens_per_sec", "training tokens/s"),
    ):
        points = [row for row in done if row[column] is not None]
        axis.scatter([row[column] for row in points], [row["best"] for row in points])
        for row in points:
            axis.annotate(
                row["overrides"] or row["job"],
                (row[column], row["best"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        if column == "trainable_pct" and points and min(row[column] for row in points) > 0:
            axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel(f"best {metric}")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def summarize(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Collect the jobs' results under ``sweep_dir`` into summary.csv, summary.md and summary.png."""
    sweep_dir = Path(sweep_dir)
    results = read_results(sweep_dir)
    if not results:
        log.warning("no job of %s wrote a result.json: no summary", sweep_dir)
        return []
    table = rows(results)
    write_csv(sweep_dir / "summary.csv", COLUMNS, table)
    text = markdown(table)
    (sweep_dir / "summary.md").write_text(text)
    drew = draw(table, sweep_dir / "summary.png")
    failed = sum(row["status"] != "finished" for row in table)
    log.info(
        "sweep summary of %d jobs (%d failed): %s%s\n%s",
        len(table),
        failed,
        sweep_dir / "summary.md",
        " and summary.png" if drew else "",
        text,
    )
    return table


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep folder when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarize(config.hydra.sweep.dir)
