"""The default jobs, exactly as a user types them, meet their learning targets (minutes each: slow)."""

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}


def run_entry(*args: str, timeout: int = 1800) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python <args>`` at the root as a user would (two threads); the result and the wall time."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, time.perf_counter() - start


def final_validation(run: Path) -> tuple[dict[str, str], int]:
    """The last validation row of a run's metrics and the size of its vocabulary."""
    with open(run / "csv" / "metrics.csv") as handle:
        final = [row for row in csv.DictReader(handle) if row.get("val/loss")][-1]
    return final, len(json.loads((run / "tokenizer.json").read_text())["model"]["vocab"])


@pytest.mark.slow
def test_default_run_learns_masked_lm_and_next_sentence_prediction(tmp_path):
    _, elapsed = run_entry("train.py", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data")
    run = tmp_path / "run"
    max_steps = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["trainer"]["max_steps"]
    final, vocab = final_validation(run)
    gap = math.log(vocab) - float(final["val/mlm_loss"])
    print(
        f"\nwall {elapsed:.0f} s, vocabulary {vocab}, val mlm_loss {float(final['val/mlm_loss']):.3f} "
        f"({gap:.2f} below ln V), val nsp_acc {float(final['val/nsp_acc']):.3f}"
    )
    assert int(final["step"]) == max_steps - 1  # the last validation ran at the end of training
    assert gap >= 3.5
    assert float(final["val/nsp_acc"]) >= 0.78


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt_tiny", "llama_tiny"])
def test_a_tiny_decoder_default_run_learns_causal_lm_within_ten_minutes(model, tmp_path):
    _, elapsed = run_entry(
        "train.py", f"model={model}", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"
    )
    run = tmp_path / "run"
    final, vocab = final_validation(run)
    loss = float(final["val/loss"])
    gap = math.log(vocab) - loss
    print(f"\n{model}: wall {elapsed:.0f} s, vocabulary {vocab}, val loss {loss:.3f} ({gap:.2f} below ln V)")
    assert int(final["step"]) == 799  # the preset's 800 steps ran, and the last one was validated
    assert gap >= 3.5
    assert elapsed < 600

    generated, _ = run_entry(
        "generate.py", f"ckpt_path={run}/checkpoints/last.ckpt", "prompt=The import statement"
    )
    assert generated.stdout.startswith("The import statement")
