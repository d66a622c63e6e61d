"""Runs that survive their machine: resume=auto, crash-safe checkpoints, preemption, the NaN guard."""

from __future__ import annotations

import copy
import csv
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lmforge.cli.train import train
from lmforge.errors import TrainingDiverged
from lmforge.io.atomic import AtomicCheckpointIO
from lmforge.tasks import BertPretraining
from tests.conftest import ROOT, TINY, compose_config, run_cli, run_if, step_of

SHORT = ["trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1"]


def steps_logged(path: Path) -> list[int]:
    with open(path) as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def test_resume_auto_starts_fresh_then_resumes_from_the_run_folders_last_checkpoint(make_cfg, caplog):
    caplog.set_level(logging.INFO, logger="lmforge.run")
    first = make_cfg(*SHORT, "resume=auto")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert "resume=auto: no" in caplog.text and "starting fresh" in caplog.text
    assert step_of(last) == 4

    caplog.clear()
    again = make_cfg(*SHORT, "trainer.max_steps=6", "resume=auto")  # same run folder (make_cfg's)
    train(again)
    assert f"resume=auto: resuming from {last}" in caplog.text
    assert torch.load(last, weights_only=True)["config"]["ckpt_path"] == str(last)  # the run records it
    assert step_of(last) == 6
    csv_folder = Path(first.paths.output_dir) / "csv"  # the first part's metrics moved aside, not deleted
    assert steps_logged(csv_folder / "metrics.1.csv") == [0, 1, 2, 3]
    assert steps_logged(csv_folder / "metrics.csv") == [4, 5]


def test_an_explicit_ckpt_path_wins_over_resume_auto(make_cfg, tmp_path, caplog):
    earlier = compose_config([*TINY, *SHORT], tmp_path / "earlier")
    train(earlier)
    given = Path(earlier.paths.output_dir) / "checkpoints" / "last.ckpt"
    caplog.set_level(logging.INFO, logger="lmforge.run")
    cfg = make_cfg(*SHORT, "trainer.max_steps=5", "resume=auto", f"ckpt_path={given}")
    train(cfg)
    assert f"ckpt_path={given} is given and wins" in caplog.text
    assert step_of(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt") == 5


def test_the_trainer_saves_through_the_atomic_io(make_cfg, monkeypatch):
    saved = []
    original = AtomicCheckpointIO.save_checkpoint

    def spy(self, checkpoint, path, storage_options=None):
        saved.append(Path(path).name)
        original(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", spy)
    train(make_cfg(*SHORT))
    assert "last.ckpt" in saved


# Run train.py with torch.save slowed down at the save of last.ckpt at step 4: it writes part of the
# file, says so through a marker file, and waits to be killed.
KILLED_DURING_SAVE = """
import os, runpy, sys, time
from pathlib import Path
from types import SimpleNamespace
import torch
from lightning.pytorch.callbacks import Callback

marker = Path(sys.argv[1])
real_save = torch.save

def save_then_hang(obj, stream, *args, **kwargs):
    target = os.readlink(f"/proc/self/fd/{stream.fileno()}") if hasattr(stream, "fileno") else str(stream)
    if isinstance(obj, dict) and obj.get("global_step") == 4 and ".last.ckpt.tmp-" in target:
        stream.write(b"half a checkpoint" * 4096)
        stream.flush()
        marker.touch()
        time.sleep(600)
    return real_save(obj, stream, *args, **kwargs)

torch.save = save_then_hang
sys.argv = ["train.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@run_if(linux=True)
def test_a_run_killed_while_saving_keeps_the_previous_last_checkpoint(tmp_path):
    script, marker = tmp_path / "killed.py", tmp_path / "saving"
    script.write_text(KILLED_DURING_SAVE)
    run_dir = tmp_path / "run"
    overrides = [*TINY, *SHORT, f"hydra.run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    process = subprocess.Popen(
        [sys.executable, str(script), str(marker), *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the save at step 4 never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    folder = run_dir / "checkpoints"
    assert list(folder.glob(".last.ckpt.tmp-*")), "the kill did not land during the save"
    last = folder / "last.ckpt"
    assert step_of(last) == 2  # the previous good one, whole

    resumed = compose_config([*TINY, *SHORT, f"ckpt_path={last}"], tmp_path / "resumed")
    train(resumed)
    assert step_of(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt") == 4


class SignalAtStep(Callback):
    """Sends this process ``signum`` at ``step``: a scheduler's signal arriving mid-training."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def test_sigterm_saves_last_ckpt_exits_0_and_the_run_resumes_from_it(tmp_path):
    marker, run_dir = tmp_path / "training", tmp_path / "run"
    overrides = [
        *TINY,
        "trainer.max_steps=100000",
        "trainer.val_check_interval=100000",
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={tmp_path / 'data'}",
        "+callbacks.started._target_=tests.support.probes.TouchAtStep",
        f"+callbacks.started.marker={marker}",
        "+callbacks.started.step=3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    process = subprocess.Popen(
        [sys.executable, "train.py", *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()[-3000:]
    output = (stdout + stderr).decode() + (run_dir / "train.log").read_text()
    assert "SIGTERM received at step" in output
    last = run_dir / "checkpoints" / "last.ckpt"
    step = step_of(last)
    assert 3 <= step < 100000

    resumed = compose_config(
        [*TINY, f"trainer.max_steps={step + 2}", f"ckpt_path={last}"], tmp_path / "resumed"
    )
    train(resumed)
    assert step_of(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt") == step + 2


@run_if(linux=True)
def test_sigusr1_saves_and_stops_at_the_batch_in_progress(make_cfg):
    cfg = make_cfg("trainer.max_steps=50", "trainer.val_check_interval=50")
    train(cfg, extra_callbacks=[SignalAtStep(signal.SIGUSR1, 2)])
    assert step_of(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt") == 3
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handler before training is back


def poison_loss_at(monkeypatch, step: int) -> None:
    """Make the training loss NaN at ``step`` (a test stand-in for a run that diverges there)."""
    original = BertPretraining.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == step else loss

    monkeypatch.setattr(BertPretraining, "training_step", training_step)


def all_weights_finite(path: Path) -> bool:
    state = torch.load(path, weights_only=False, map_location="cpu")["state_dict"]
    return all(bool(torch.isfinite(tensor).all()) for tensor in state.values() if tensor.is_floating_point())


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(make_cfg, monkeypatch):
    poison_loss_at(monkeypatch, 3)
    cfg = make_cfg("trainer.max_steps=6", "trainer.val_check_interval=2")
    with pytest.raises(TrainingDiverged, match="NaN or infinite at step 3; likely causes: a learning rate"):
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert step_of(last) == 2 and all_weights_finite(last)


class StepSnapshots(Callback):
    """Copies of the task's weights and of the optimiser's per-parameter state (AdamW's moments and step
    counts) just before and just after each training step, by the step's number."""

    def __init__(self) -> None:
        self.before: dict[int, tuple[dict, dict]] = {}
        self.after: dict[int, tuple[dict, dict]] = {}

    @staticmethod
    def snapshot(trainer, pl_module) -> tuple[dict, dict]:
        weights = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        return weights, copy.deepcopy(trainer.optimizers[0].state_dict()["state"])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before[trainer.global_step] = self.snapshot(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.after[trainer.global_step - 1] = self.snapshot(trainer, pl_module)


def identical(first: dict, second: dict) -> bool:
    """Whether two nested dicts of tensors (and numbers) hold the same values, bit for bit."""
    if first.keys() != second.keys():
        return False
    for key, value in first.items():
        other = second[key]
        if isinstance(value, dict):
            if not identical(value, other):
                return False
        elif isinstance(value, torch.Tensor):
            if not torch.equal(value, other):
                return False
        elif value != other:
            return False
    return True


def test_nan_policy_skip_skips_the_step_and_counts_it(make_cfg, monkeypatch):
    poison_loss_at(monkeypatch, 3)
    cfg = make_cfg(
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "trainer.log_every_n_steps=1",
        "callbacks.nan_guard.policy=skip",
    )
    snapshots = StepSnapshots()
    train(cfg, extra_callbacks=[snapshots])
    run_dir = Path(cfg.paths.output_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert step_of(last) == 6 and all_weights_finite(last)
    with open(run_dir / "csv" / "metrics.csv") as handle:
        skipped = [
            float(row["train/skipped_steps"]) for row in csv.DictReader(handle) if row["train/skipped_steps"]
        ]
    assert skipped[:3] == [0.0, 0.0, 0.0] and skipped[-1] == 1.0
    # the skipped step left every weight and the optimiser's state as they were, to the bit; the
    # steps around it changed both (so the snapshots see a step)
    for step in (2, 3, 4):
        (weights, moments), (weights_after, moments_after) = snapshots.before[step], snapshots.after[step]
        assert moments, "the optimiser holds no state yet"
        unchanged = identical(weights, weights_after), identical(moments, moments_after)
        assert unchanged == ((True, True) if step == 3 else (False, False)), (step, unchanged)


DIVERGES = """
import runpy, sys
from lmforge.tasks import BertPretraining

original = BertPretraining.training_step

def training_step(self, batch, batch_idx):
    loss = original(self, batch, batch_idx)
    return loss * float("inf") if self.global_step == 1 else loss

BertPretraining.training_step = training_step
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_train_py_reports_divergence_in_one_line_with_status_3(tmp_path):
    script = tmp_path / "diverges.py"
    script.write_text(DIVERGES)
    result = run_cli(
        str(script),
        *TINY,
        "trainer.max_steps=4",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.data_dir={tmp_path / 'data'}",
    )
    assert result.returncode == 3, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: training diverged: the gradients became NaN or infinite at step 1")
    assert "Traceback" not in result.stderr
