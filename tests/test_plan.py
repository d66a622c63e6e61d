"""plan=true: the figures it prints, that it trains nothing, and its memory estimate against a real run."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lmforge.cli.train import train
from lmforge.models import BertConfig, BertModel, GPTConfig, build_backbone
from lmforge.run.plan import (
    activation_elements_per_token,
    estimate_memory,
    max_time_seconds,
    planned_steps,
    sharded_parts,
    validations,
)

from .conftest import TINY, run_cli


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


def test_memory_formula():
    config = GPTConfig(vocab_size=1000, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_seq_len=32)
    backbone = build_backbone(config)
    n = backbone.num_parameters()
    args = dict(backbone=backbone, total=n, trainable=n, world_size=4, batch_size=2, seq_len=16, runtime=7)
    full = estimate_memory(precision="32-true", strategy="ddp", logit_positions=1.0, **args)
    assert (full.weights, full.gradients, full.optimizer) == (4 * n, 4 * n, 8 * n)
    # per layer: attention 3d + 2 kv, feed-forward d + 2 f, residuals 2 d; plus 2 d around the stack
    assert activation_elements_per_token(backbone) == 2 * (5 * 64 + 64 + 2 * 256 + 2 * 64) + 2 * 64
    assert full.activations == 32 * activation_elements_per_token(backbone) * 4
    assert full.logits == 32 * 1000 * 16 and full.runtime == 7
    assert full.total == full.weights + full.gradients + full.optimizer + full.activations + full.logits + 7
    zero3 = estimate_memory(precision="bf16-true", strategy="deepspeed_stage_3", logit_positions=0.0, **args)
    assert (zero3.weights, zero3.gradients, zero3.optimizer) == (2 * n // 4, 2 * n // 4, 4 * n // 4)
    assert zero3.logits == 0
    mixed = estimate_memory(precision="bf16-mixed", strategy="auto", logit_positions=0.15, **args)
    assert mixed.weights == 4 * n and mixed.activations == full.activations // 2


def test_sharding_by_strategy_name():
    assert sharded_parts("ddp") == () and sharded_parts("auto") == ()
    assert sharded_parts("deepspeed_stage_1") == ("optimizer",)
    assert sharded_parts("deepspeed_zero2_offload") == ("optimizer", "gradients")
    assert set(sharded_parts("fsdp")) == {"optimizer", "gradients", "weights"}


def test_steps_validations_and_time_limits():
    trainer = OmegaConf.create({"max_steps": 1000, "max_epochs": -1, "val_check_interval": 300})
    assert planned_steps(trainer, batches_per_epoch=50) == 1000
    assert validations(trainer, 1000, 50) == 4  # at 300, 600, 900 and the last step
    by_epochs = OmegaConf.create({"max_steps": -1, "max_epochs": 3, "accumulate_grad_batches": 2})
    assert planned_steps(by_epochs, batches_per_epoch=50) == 75
    assert max_time_seconds("00:01:30:00") == 5400 and max_time_seconds({"minutes": 2}) == 120


def test_bert_activations_count_no_rotary_or_gate():
    config = BertConfig(vocab_size=100, d_model=32, n_layers=3, n_heads=2, d_ff=64, max_seq_len=16)
    assert activation_elements_per_token(BertModel(config)) == 3 * (5 * 32 + 32 + 2 * 64 + 2 * 32) + 2 * 32


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
