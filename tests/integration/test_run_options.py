"""Run options in real runs: the debug presets, no logger or progress bar, the validation schedule, a
time budget, gradient clipping under mixed precision, bf16 mixed precision and torch.compile switched on
and learning, W&B offline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch._dynamo.utils import counters

from lmforge.cli.train import train
from lmforge.run.tracking import has_wandb_key
from tests.conftest import CORPUS, TINY, compose_config, metrics

# The subjects corpus (tests/integration/test_pretraining.py): a loss that falls fast and far.
LEARNS = [
    f"data.corpus.paths=[{CORPUS / 'subjects.txt'}]",
    "data.val_draws=4",
    "optim.lr=1e-2",
    "trainer.max_steps=30",
    "trainer.val_check_interval=30",
    "trainer.log_every_n_steps=1",
]


def assert_the_loss_falls(cfg) -> None:
    losses = [row["train/loss"] for row in metrics(Path(cfg.paths.output_dir)) if "train/loss" in row]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert len(losses) == 30 and last < first - 1.0, f"training loss went from {first:.2f} to {last:.2f}"


class LinearOutputDtypes(Callback):
    """The dtypes the backbone's linear layers computed in during training."""

    def __init__(self) -> None:
        self.seen: set[torch.dtype] = set()

    def on_train_start(self, trainer, pl_module) -> None:
        for module in pl_module.backbone.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda _, __, output: self.seen.add(output.dtype))


def test_debug_limit_is_a_short_run_with_checkpoints(make_cfg):
    cfg = make_cfg("debug=limit")
    train(cfg)
    steps = [row["step"] for row in metrics(Path(cfg.paths.output_dir)) if "val/loss" in row]
    assert steps == [19, 39]
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


def test_debug_overfit_drives_the_loss_down(make_cfg):
    cfg = make_cfg("debug=overfit", "trainer.max_steps=150", "optim.lr=5e-3", "trainer.log_every_n_steps=1")
    train(cfg)
    losses = [row["train/loss"] for row in metrics(Path(cfg.paths.output_dir)) if "train/loss" in row]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


def test_a_run_without_logger_drops_the_learning_rate_monitor(make_cfg):
    cfg = make_cfg("~logger", "trainer.max_steps=4", "trainer.val_check_interval=2")
    train(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()
    assert not (Path(cfg.paths.output_dir) / "csv").exists()


def test_a_run_without_progress_bar_drops_the_bar_callback(tmp_path):
    overrides = [o for o in TINY if not o.startswith("callbacks.rich_progress_bar")]  # the bar is configured
    cfg = compose_config([*overrides, "trainer.max_steps=4", "trainer.val_check_interval=2"], tmp_path)
    assert cfg.callbacks.rich_progress_bar is not None and not cfg.trainer.enable_progress_bar
    train(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


def test_the_last_step_is_validated_when_the_interval_does_not_divide_it(make_cfg):
    cfg = make_cfg("trainer.max_steps=7", "trainer.val_check_interval=5")
    train(cfg)
    validated = [int(row["step"]) for row in metrics(Path(cfg.paths.output_dir)) if "val/loss" in row]
    assert validated == [4, 6]  # at the interval, then the final model (steps count from 0 in the log)


def test_a_run_bounded_by_max_time_stops_there_at_the_end_of_its_schedule(make_cfg):
    cfg = make_cfg(
        "trainer.max_steps=-1",
        "trainer.max_time=00:00:00:06",
        "trainer.val_check_interval=20",
        "trainer.log_every_n_steps=1",
        "optim.min_lr_ratio=0.0",
    )
    train(cfg)
    rows = metrics(Path(cfg.paths.output_dir))
    rates = [row["lr-AdamW/pg1"] for row in rows if "lr-AdamW/pg1" in row]
    peak = cfg.optim.lr
    assert len(rates) > 20  # it trained for the budget, not a fixed number of steps
    assert max(rates) > 0.9 * peak  # it warmed up to the peak
    assert rates[-1] < 0.05 * peak  # and decayed to the floor as the time ran out


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_a_run_clips_its_gradients_in_mixed_precision_too(make_cfg, precision):
    # Lightning refuses to clip the gradients of a fused AdamW under mixed precision (found by the GPU
    # check's dry run: trainer=gpu, bf16-mixed with clipping, failed at its first step)
    cfg = make_cfg(f"precision={precision}", "trainer.gradient_clip_val=0.5", "trainer.max_steps=2")
    train(cfg)
    losses = [row["train/loss"] for row in metrics(Path(cfg.paths.output_dir)) if "train/loss" in row]
    assert losses and all(math.isfinite(loss) for loss in losses)


def test_bf16_mixed_precision_computes_in_bfloat16_and_learns(make_cfg):
    cfg = make_cfg("precision=bf16-mixed", *LEARNS)
    dtypes = LinearOutputDtypes()
    train(cfg, extra_callbacks=[dtypes])
    assert dtypes.seen == {torch.bfloat16}  # autocast reached every linear layer
    assert_the_loss_falls(cfg)


@pytest.mark.slow
def test_compile_true_trains_a_compiled_backbone_that_learns(make_cfg):
    """About 40 s on CPU with an empty Inductor cache (5 s with a warm one): it compiles for each padded
    width of the masked-LM batches."""
    counters.clear()
    cfg = make_cfg("compile=true", *LEARNS)
    train(cfg)
    assert counters["stats"]["unique_graphs"] > 0  # dynamo captured and compiled the backbone
    assert_the_loss_falls(cfg)


def test_wandb_goes_offline_without_a_key_and_records_the_run(make_cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert not has_wandb_key()
    cfg = make_cfg(
        "logger=wandb",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "+service_api_key=hunter2",  # a secret that must not be saved
    )
    with caplog.at_level("INFO", logger="lmforge"):
        train(cfg)
    assert "logging offline" in caplog.text
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # wandb 0.31 keeps an offline run's config and history in one protobuf log (run-*.wandb), read
    # by `wandb sync`; its strings are stored as they are, so what was recorded can be looked up.
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for expected in (
        b"d_model",
        b"parameters",
        b"trainable",
        b"commit",
        b"dirty",
        b"train/loss",
        b"val/loss",
    ):
        assert expected in record, expected
    assert b"hunter2" not in record and b"service_api_key" not in record
    assert (runs[0] / "files" / "tokenizer.json").is_file()
