"""plan=true in a run: the figures it prints, that it trains nothing, and its memory estimate against a
real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cli.train import train
from tests.conftest import TINY, run_cli


def test_plan_prints_the_figures_and_trains_nothing(make_cfg, capsys):
    cfg = make_cfg(
        "plan=true", "plan_timed_steps=2", "trainer.max_steps=100", "trainer.val_check_interval=40"
    )
    assert train(cfg) is None
    out = capsys.readouterr().out
    for words in (
        "parameters",
        "trainable",
        "FLOPs per token",
        "tokens per step",
        "weights",
        "optimizer",
        "activations",
        "expected time",
        "for 100 steps and 3 validations",
        "nothing trained",
    ):
        assert words in out, words
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "csv").exists()
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["parameters"] == plan["trainable"] > 0
    assert plan["tokens_per_step"] == 8 * 48
    assert plan["timed_steps"] == 2 and plan["seconds_per_batch"] > 0
    assert plan["expected_seconds"] == pytest.approx(
        100 * plan["seconds_per_batch"] + 3 * plan["val_batches"] * plan["seconds_per_val_batch"]
    )


def test_plan_without_timing_only_counts(make_cfg, capsys):
    assert train(make_cfg("plan=true", "plan_timed_steps=0")) is None
    out = capsys.readouterr().out
    assert "FLOPs per token" in out and "expected time" not in out


# A model whose weights and optimiser state outweigh the process itself, so the estimate is tested
# on what it computes rather than on the libraries' share.
WIDE = [
    "model=gpt_tiny",
    "model.d_model=512",
    "model.n_heads=8",
    "model.d_ff=2048",
    "model.n_layers=10",
    "model.max_seq_len=64",
    "data.batch_size=4",
    "trainer.log_every_n_steps=1",
]


def test_memory_estimate_is_within_2x_of_a_real_run(tmp_path):
    common = [*TINY, *WIDE, f"paths.data_dir={tmp_path}/data"]
    planned = run_cli(
        "train.py", *common, "plan=true", "plan_timed_steps=1", f"hydra.run.dir={tmp_path}/plan"
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    states = sum(plan["memory"][k] for k in ("weights", "gradients", "optimizer (AdamW moments)"))
    assert states > plan["memory"]["runtime (libraries, data)"]

    ran = run_cli(
        "train.py",
        *common,
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    peak = json.loads((tmp_path / "run" / "result.json").read_text())["peak_memory_gb"] * 1e9
    estimate = plan["memory"]["total"]
    assert peak / 2 <= estimate <= peak * 2, f"estimate {estimate / 1e9:.2f} GB, measured {peak / 1e9:.2f} GB"
