"""The default job, exactly as `make train` runs it, meets its learning targets (10 minutes: slow)."""

import csv
import math
import os
import subprocess
import sys
import time

import pytest

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

    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        val = [row for row in csv.DictReader(handle) if row.get("val/loss")]
    final = val[-1]
    with open(tmp_path / "run" / "tokenizer.json") as handle:
        import json

        vocab = len(json.load(handle)["model"]["vocab"])
    gap = math.log(vocab) - float(final["val/mlm_loss"])
    print(
        f"\nwall {elapsed:.0f} s, step {final['step']}, vocabulary {vocab}, mlm_loss {final['val/mlm_loss']} "
        f"({gap:.2f} below ln V), nsp_acc {final['val/nsp_acc']}"
    )
    assert int(final["step"]) == 1699  # the last validation ran at the end of training
    assert gap >= 3.5
    assert float(final["val/nsp_acc"]) >= 0.78
