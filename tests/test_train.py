"""Short real runs of the entry point: fast dev run, a run that learns, resume, the command line."""

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from lmforge.cli.train import train
from lmforge.models import build_backbone
from lmforge.run.callbacks import ProgressBar
from lmforge.tasks import BertPretraining

from .conftest import TINY, compose_config, run_cli

RUN = [
    "trainer.max_steps=30",
    "trainer.val_check_interval=15",
    "optim.lr=1e-2",
    "trainer.log_every_n_steps=1",
]


def metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


def test_fast_dev_run(make_cfg):
    cfg = make_cfg("debug=fdr")
    assert train(cfg) is not None
    assert (Path(cfg.paths.output_dir) / "tokenizer.json").is_file()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("short")
    cfg = compose_config([*TINY, *RUN], tmp)
    train(cfg)
    return cfg, Path(cfg.paths.output_dir)


def test_a_short_run_learns(short_run):
    _, run_dir = short_run
    losses = [row["train/loss"] for row in metrics(run_dir) if "train/loss" in row]
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, f"training loss went from {first:.2f} to {last:.2f}"
    val = [row for row in metrics(run_dir) if "val/loss" in row]
    assert len(val) == 2 and {"val/mlm_acc", "val/nsp_acc", "val/perplexity"} <= set(val[-1])
    # 30 steps on a tiny corpus: too few held-out tokens (about 50 masked) for one check to beat the
    # other reliably, but the masked-LM loss must be clearly below that of a uniform guess, ln(V).
    vocab = len(json.loads((run_dir / "tokenizer.json").read_text())["model"]["vocab"])
    assert val[-1]["val/mlm_loss"] < math.log(vocab) - 0.1


def test_throughput_flops_and_peak_memory_are_logged(short_run):
    _, run_dir = short_run
    rows = metrics(run_dir)
    rates = [row for row in rows if "train/device/items_per_sec" in row]
    assert rates, "ThroughputMonitor logged nothing"
    last = rates[-1]
    for key in ("items_per_sec", "samples_per_sec", "batches_per_sec", "flops_per_sec"):
        assert last[f"train/device/{key}"] > 0
    # FLOP/s over samples/s is the FLOPs of one sample: flops_per_token x its padded width (8 to 48)
    hparams = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    backbone = build_backbone(instantiate(hparams["model"]))
    flops_per_sample = last["train/device/flops_per_sec"] / last["train/device/samples_per_sec"]
    lowest, highest = (backbone.flops_per_token(width) * width for width in (8, 48))
    assert lowest <= flops_per_sample * 1.001 and flops_per_sample <= highest * 1.001
    memory = [row["train/peak_memory_gb"] for row in rows if "train/peak_memory_gb" in row]
    assert memory and 0.05 < memory[-1] < 24


def test_checkpoints_hold_the_step_the_hyperparameters_and_the_tokenizer(short_run):
    _, run_dir = short_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 30
    assert checkpoint["hyper_parameters"]["model"]["vocab_size"] <= 400
    assert "tokenizer" in checkpoint["MaskedLMDataModule"]
    assert len(list((run_dir / "checkpoints").glob("step*-val_loss*.ckpt"))) == 1


def test_resume_from_last_continues_the_step_count(short_run, tmp_path):
    _, run_dir = short_run
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = compose_config([*TINY, *RUN, "trainer.max_steps=40", f"ckpt_path={last}"], tmp_path)
    train(resumed)
    steps = [int(row["step"]) for row in metrics(Path(resumed.paths.output_dir)) if "train/loss" in row]
    assert steps[0] == 30 and steps[-1] == 39 and len(steps) == 10
    final = torch.load(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == 40


def test_last_ckpt_holds_the_last_step_even_when_validation_got_worse(make_cfg, monkeypatch):
    """Lightning 2.6 refreshes ``save_last`` only when a best checkpoint is saved; ours does not wait."""

    def worse_every_time(self):
        self.log("val/loss", float(self.global_step))  # rises: the first validation stays the best

    monkeypatch.setattr(BertPretraining, "on_validation_epoch_end", worse_every_time)
    cfg = make_cfg("trainer.max_steps=6", "trainer.val_check_interval=3")
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 6
    assert [p.name for p in folder.glob("step*.ckpt")] == ["step000003-val_loss3.0000.ckpt"]


def test_train_py_runs_from_the_command_line(tmp_path):
    result = run_cli(
        "train.py", "debug=fdr", *TINY, f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "tokenizer.json").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_module_entry_prints_the_config(tmp_path):
    result = run_cli("-m", "lmforge", "train", "--cfg", "job", "model=bert_small", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "d_model: 512" in result.stdout and "nsp: true" in result.stdout


def test_bert_small_runs_twenty_steps(make_cfg):
    cfg = make_cfg("model=bert_small", "model.max_seq_len=512", "trainer.max_steps=20", "data.batch_size=4")
    train(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


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


@pytest.mark.parametrize(("max_epochs", "shown"), [(-1, "Epoch 3"), (None, "Epoch 3"), (10, "Epoch 3/9")])
def test_the_progress_bar_counts_epochs_only_against_an_epoch_bound(max_epochs, shown):
    bar = ProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)  # all the description reads
    assert bar._get_train_description(3).rstrip() == shown  # padded to the validation bar's width
