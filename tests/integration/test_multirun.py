"""Multirun: a failing job does not stop the sweep, each job writes a result, the sweep a summary; plots."""

import csv
import json
from pathlib import Path

import pytest

from lmforge.cli.plot import main as plot_main
from lmforge.cli.summary import main as summary_main
from tests.conftest import TINY, run_cli


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two jobs, the second with a head count that does not divide the width (a config error)."""
    tmp = tmp_path_factory.mktemp("sweep")
    tiny = [o for o in TINY if not o.startswith("model.n_heads")]
    result = run_cli(
        "train.py",
        "-m",
        *tiny,
        "model.n_heads=2,3",
        "trainer.max_steps=24",
        "trainer.val_check_interval=12",
        "trainer.log_every_n_steps=2",
        "callbacks.throughput.window_size=4",
        f"paths.log_dir={tmp}/logs",
        f"paths.data_dir={tmp}/data",
        f"hydra.sweep.dir={tmp}/sweep",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "sweep"


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(sweep):
    good = json.loads((sweep / "0" / "result.json").read_text())
    bad = json.loads((sweep / "1" / "result.json").read_text())
    assert good["status"] == "finished" and "model.n_heads=2" in good["overrides"]
    assert good["metric"] == "val/loss" and 0 < good["best"] < 10
    assert good["trainable_pct"] == 100.0 and good["tokens_per_sec"] > 0 and good["peak_memory_gb"] > 0
    assert good["steps"] == 24 and good["wall_seconds"] > 0
    assert (
        bad["status"] == "failed"
        and "does not divide" in bad["error"]
        and "model.n_heads=3" in bad["overrides"]
    )


def test_the_sweep_writes_its_summary(sweep):
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["job"], row["overrides"], row["status"]) for row in rows] == [
        ("0", "model.n_heads=2", "finished"),
        ("1", "model.n_heads=3", "failed"),
    ]
    table = (sweep / "summary.md").read_text()
    assert "| best val/loss |" in table and "model.n_heads=3 | failed" in table
    assert (sweep / "summary.png").stat().st_size > 10_000


def test_the_summary_can_be_written_again_by_hand(sweep):
    (sweep / "summary.md").unlink()
    summary_main([str(sweep)])
    assert (sweep / "summary.md").is_file()


def test_plot_draws_the_curves_of_a_sweep_and_of_single_runs(sweep, tmp_path):
    plot_main([str(sweep), "--out", str(tmp_path / "sweep.png")])
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    plot_main([str(sweep / "0"), "--metrics", "train/loss,val/mlm_acc"])
    assert (sweep / "0" / "curves.png").is_file()


def test_plot_errors_name_the_problem(sweep, tmp_path):
    with pytest.raises(SystemExit, match=r"holds no csv/metrics\.csv"):
        plot_main([str(tmp_path)])
    with pytest.raises(SystemExit, match="no run logged val/nothing"):
        plot_main([str(sweep / "0"), "--metrics", "val/nothing"])
