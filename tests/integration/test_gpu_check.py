"""The GPU check's dry run on the CPU (GPU_CHECK_DRY=1 scripts/gpu_check.sh) writes the report with every
step; a step whose process dies is recorded with the end of its log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.bench import STEP_NAMES, gpu_check, steps


def dry_run(out: Path, only: str = "") -> dict:
    """``GPU_CHECK_DRY=1 scripts/gpu_check.sh out``; the JSON it wrote."""
    env = {**os.environ, "GPU_CHECK_DRY": "1", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("GPU_CHECK_ONLY", None)
    if only:
        env["GPU_CHECK_ONLY"] = only
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / gpu_check.FIGURES).read_text())


def assert_every_step_reported(out: Path, report: dict) -> None:
    assert [step["name"] for step in report["steps"]] == STEP_NAMES
    assert all(step["status"] in gpu_check.STATUSES for step in report["steps"])
    text = (out / gpu_check.REPORT).read_text()
    assert text.startswith("# lmforge GPU check (dry run on the CPU)")
    for step in report["steps"]:
        assert f"| [{step['name']}](#{step['name']}) | {step['status']} |" in text
        assert f"\n## {step['name']}\n" in text
    assert (out / gpu_check.LOG).is_file()


def test_the_dry_run_writes_the_report_with_every_step(tmp_path):
    # the cheap part of the suite: two steps run, the others are recorded as not selected
    report = dry_run(tmp_path, only="environment,gpt2_small")
    assert_every_step_reported(tmp_path, report)
    status = {step["name"]: step for step in report["steps"]}
    assert status["environment"]["status"] == "partial"  # the GPU's facts: skipped, with the reason
    assert "dry run on the CPU" in status["environment"]["skipped_parts"][0]
    assert status["gpt2_small"]["status"] == "passed", status["gpt2_small"]
    assert status["gpt2_small"]["figures"]["tokens_per_s"] > 0
    assert {step["reason"] for name, step in status.items() if name not in ("environment", "gpt2_small")} == {
        "not selected (GPU_CHECK_ONLY)"
    }
    assert "train.py" in (tmp_path / gpu_check.LOG).read_text()  # the runs' logs come back too


@pytest.mark.slow
def test_every_step_of_the_dry_run_passes(tmp_path):
    report = dry_run(tmp_path)
    assert_every_step_reported(tmp_path, report)
    failed = {step["name"]: step.get("errors") or step.get("checks") for step in report["steps"]}
    assert {step["name"]: step["status"] for step in report["steps"]} == {
        **dict.fromkeys(STEP_NAMES, "passed"),
        "environment": "partial",  # no GPU facts on a CPU
        "deepspeed": "partial",  # strategy=auto stood in for DeepSpeed
    }, failed


def test_a_step_whose_process_dies_is_recorded_with_the_end_of_its_log(tmp_path):
    dead = steps.Step("no_such_step", "A step the child process does not know", 30, steps.step_data)
    record = gpu_check.run_step_process(dead, steps.DRY, tmp_path, limit=30)
    assert record["status"] == "failed"
    assert "without a record" in record["reason"]
    assert "StopIteration" in record["errors"][0]["tail"]
