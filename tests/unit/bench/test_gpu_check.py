"""The GPU check (scripts/gpu_check.sh, bench/gpu_check.py) cannot rot between GPU runs: every command of
the GPU run composes, and the parts that judge a GPU run's figures (loss comparisons, saved method
weights, the bf16 peak, the report) do what the report says they do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from safetensors.torch import save_file

from tests.conftest import CONF
from tests.support.bench import Outcome, Run, compare_losses, gpu_check, steps


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
