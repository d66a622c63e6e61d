"""The GPU check (scripts/gpu_check.sh, bench/gpu_check.py) cannot rot between GPU runs: its dry run
on the CPU writes the report with every step, every command of the GPU run composes, and the parts
that judge a GPU run's figures (loss comparisons, saved method weights, the bf16 peak) do what the
report says they do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from safetensors.torch import save_file

from .conftest import CONF, ROOT

sys.path.append(str(ROOT / "bench"))  # the check's modules import each other as scripts do
import gpu_check
import gpu_check_steps as steps
from gpu_check_runs import Outcome, Run, compare_losses

STEP_NAMES = [step.name for step in steps.STEPS]


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


@pytest.mark.parametrize("mode", [steps.GPU, steps.DRY], ids=["gpu", "dry"])
def test_every_train_command_of_the_check_composes(mode, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name, overrides in steps.all_commands(mode).items():
            cfg = compose("train", overrides=[*overrides, f"paths.output_dir={tmp_path}"])
            assert cfg.data.max_seq_len <= cfg.model.max_seq_len, name
            if "strategy=deepspeed_zero3" in overrides:
                assert cfg.trainer.strategy.stage == 3, name
    if not mode.dry:  # the GPU run uses the GPU presets and DeepSpeed itself
        commands = steps.all_commands(mode)
        assert "trainer=gpu" in commands["gpt2_small"] and "strategy=deepspeed_zero2" in commands["zero2"]


def test_a_step_whose_process_dies_is_recorded_with_the_end_of_its_log(tmp_path):
    dead = steps.Step("no_such_step", "A step the child process does not know", 30, steps.step_data)
    record = gpu_check.run_step_process(dead, steps.DRY, tmp_path, limit=30)
    assert record["status"] == "failed"
    assert "without a record" in record["reason"]
    assert "StopIteration" in record["errors"][0]["tail"]


def losses(*values: float) -> dict[int, str]:
    return {step: repr(value) for step, value in enumerate(values)}


def test_losses_agree_within_the_tolerance_and_every_step_must_be_there():
    out = Outcome()
    compare_losses(out, "same", "same", losses(9.0, 8.5), losses(9.0, 8.5), 1e-3)
    compare_losses(out, "close", "close", losses(9.0, 8.5), losses(9.0, 8.504), 1e-3)
    assert out.figures["same_identical"] and not out.figures["close_identical"]
    assert out.figures["close_max_relative_difference"] == pytest.approx(0.004 / 8.5)
    assert not out.failed
    compare_losses(out, "far", "far", losses(9.0, 8.5), losses(9.0, 8.6), 1e-3)
    assert out.failed
    gaps = Outcome()
    compare_losses(gaps, "gap", "gap", losses(9.0, 8.5, 8.0), losses(9.0, 8.5), 1e-3)
    assert gaps.failed and "steps missing: [2]" in gaps.checks[0]["detail"]


def saved_method(folder: Path, tensors: dict[str, torch.Tensor]) -> Run:
    (folder / "peft").mkdir(parents=True)
    save_file(tensors, str(folder / "peft" / "adapter_model.safetensors"))
    (folder / "result.json").write_text(json.dumps({"parameters": 100_000, "trainable_pct": 0.512}))
    return Run("lora", folder, folder / "log", 0, 1.0)


def test_saved_method_weights_are_the_trained_ones_none_empty_and_shaped_as_without_sharding(tmp_path):
    whole = {"blocks.0.attn.lora_a": torch.zeros(8, 32), "blocks.0.attn.lora_b": torch.zeros(32, 8)}
    out = Outcome()
    shapes = steps.check_method_weights(out, saved_method(tmp_path / "auto", whole), "auto")
    assert not out.failed and out.figures["auto_saved_numbers"] == 512  # 0.512 % of 100,000 train
    more = Outcome()  # a checkpoint of more than the method's weights
    steps.check_method_weights(
        more, saved_method(tmp_path / "more", {**whole, "wte": torch.zeros(8, 8)}), "more"
    )
    assert [check["ok"] for check in more.checks] == [True, False]
    # what a ZeRO-3 run would save without gathering its partitioned parameters first
    empty = Outcome()
    partitioned = {name: torch.zeros(0) for name in whole}
    steps.check_method_weights(empty, saved_method(tmp_path / "zero3", partitioned), "zero3", like=shapes)
    assert [check["ok"] for check in empty.checks] == [False, False]


def test_mfu_is_measured_against_the_h200s_dense_bf16_rate(monkeypatch):
    monkeypatch.delenv("GPU_CHECK_PEAK_TFLOPS", raising=False)
    peak, source = steps.bf16_peak("NVIDIA H200")
    assert peak == 989.4e12 and "dense" in source
    monkeypatch.setenv("GPU_CHECK_PEAK_TFLOPS", "500")
    assert steps.bf16_peak("NVIDIA H200")[0] == 500e12


def test_lightnings_table_has_no_peak_for_the_name_torch_gives_an_h200(monkeypatch):
    # why the check gives the peak itself (docs/gpu-check.md)
    from lightning.fabric.utilities.throughput import get_available_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    with pytest.warns(UserWarning, match="FLOPs not found"):
        assert get_available_flops(torch.device("cuda"), torch.bfloat16) is None


def test_the_report_shows_failed_checks_skipped_parts_and_error_logs():
    failed = Outcome()
    failed.check("ZeRO-3: resume=auto goes on from the checkpoint", False, "it went on at step 0")
    failed.error("zero3_ckpt_path (exit status 2)", "error: ckpt_path=... is not a file")
    partial = Outcome()
    partial.skip_part("DeepSpeed itself", "no CUDA")
    report = {
        "mode": "GPU",
        "date": "2026-12-04 12:00 UTC",
        "command": "scripts/gpu_check.sh out",
        "budget_s": 480,
        "elapsed_s": 100.0,
        "environment": {"device": "NVIDIA H200", "peak_bf16_tflops": 989.4, "matmul_bf16_tflops": 780.0},
        "steps": [
            {"name": "deepspeed", "title": "DeepSpeed", "seconds": 90.0, **failed.record()},
            {"name": "fsdp", "title": "FSDP", "seconds": 5.0, **partial.record()},
            {
                "name": "decoding",
                "title": "Decoding",
                "seconds": 0.0,
                "status": "skipped",
                "reason": "out of time",
            },
        ],
    }
    text = gpu_check.markdown(report)
    assert "| [deepspeed](#deepspeed) | failed | 90 |" in text
    assert "- [ ] ZeRO-3: resume=auto goes on from the checkpoint: it went on at step 0" in text
    assert "```text\nerror: ckpt_path=... is not a file\n```" in text
    assert "| [fsdp](#fsdp) | partial |" in text and "- skipped: DeepSpeed itself: no CUDA" in text
    assert "| [decoding](#decoding) | skipped | 0 | out of time |" in text
    assert "MFU against 989.4 TFLOP/s" in text
