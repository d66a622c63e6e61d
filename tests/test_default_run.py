"""The default jobs, exactly as a user types them, meet their learning targets (minutes each: slow)."""

import csv
import json
import math
import os
import subprocess
import sys
import time

import pytest
import yaml

from .conftest import ROOT


@pytest.mark.slow
def test_default_run_learns_masked_lm_and_next_sentence_prediction(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]

    run = tmp_path / "run"
    max_steps = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["trainer"]["max_steps"]
    with open(run / "csv" / "metrics.csv") as handle:
        final = [row for row in csv.DictReader(handle) if row.get("val/loss")][-1]
    vocab = len(json.loads((run / "tokenizer.json").read_text())["model"]["vocab"])
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
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"model={model}",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.data_dir={tmp_path}/data",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]

    run = tmp_path / "run"
    with open(run / "csv" / "metrics.csv") as handle:
        final = [row for row in csv.DictReader(handle) if row.get("val/loss")][-1]
    vocab = len(json.loads((run / "tokenizer.json").read_text())["model"]["vocab"])
    loss = float(final["val/loss"])
    gap = math.log(vocab) - loss
    print(f"\n{model}: wall {elapsed:.0f} s, vocabulary {vocab}, val loss {loss:.3f} ({gap:.2f} below ln V)")
    assert int(final["step"]) == 799  # the preset's 800 steps ran, and the last one was validated
    assert gap >= 3.5
    assert elapsed < 600

    generated = subprocess.run(
        [
            sys.executable,
            "generate.py",
            f"ckpt_path={run}/checkpoints/last.ckpt",
            "prompt=The import statement",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert generated.stdout.startswith("The import statement")
