"""Optuna studies that run trials (real ones, or train() stood in for where training is not under test):
resume from SQLite to n_trials, pruning, timeouts, failed and stale trials, locks, a trial whose config
is invalid, a metric never logged, and the real ``python sweep.py`` resuming a study after a kill."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from lmforge.cli.sweep.cli import load_settings
from lmforge.cli.sweep.pruning import MetricNotLogged
from lmforge.cli.sweep.storage import study_lock
from lmforge.cli.sweep.trial import run_study
from lmforge.errors import ConfigError
from tests.conftest import ROOT, TINY
from tests.support.sweeps import RUN, fake_train, stored, study_dir, sweep


def test_a_study_continues_from_its_storage_to_n_trials_in_total(study_folders, tmp_path, caplog):
    caplog.set_level("INFO", logger="lmforge.cli.sweep")
    sweep(study_folders, "hparams_search=lr_warmup", "n_trials=3", "pruner.type=none")
    first = [(t.number, t.state, t.value, t.params) for t in stored(tmp_path)]
    assert [state for _, state, _, _ in first] == [TrialState.COMPLETE] * 3

    sweep(study_folders, "hparams_search=lr_warmup", "n_trials=5", "pruner.type=none")
    trials = stored(tmp_path)
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [(t.number, t.state, t.value, t.params) for t in trials[:3]] == first
    # the resumed run's sampler is seeded afresh: it does not replay the first run's draws
    assert len({t.params["optim.lr"] for t in trials}) == 5
    assert "3 trials finished (3 complete, 0 pruned, 0 failed); running 2 more for n_trials=5" in caplog.text

    folder = study_dir(tmp_path)
    with open(folder / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["number"] for row in rows] == ["0", "1", "2", "3", "4"]
    assert {"state", "value", "duration_s", "optim.lr", "optim.warmup_ratio"} <= set(rows[0])
    best = min(trials, key=lambda t: t.value)
    summary = (folder / "summary.md").read_text()
    assert f"Best: trial {best.number}" in summary and "python train.py" in summary
    trial_dir = folder / f"trial_{best.number}"
    assert (trial_dir / "checkpoints" / "last.ckpt").is_file()
    assert best.user_attrs["overrides"][0] in (trial_dir / ".hydra" / "overrides.yaml").read_text()

    def must_not_run(cfg, extra_callbacks=()):
        raise AssertionError("the study already holds n_trials trials")

    sweep(study_folders, "hparams_search=lr_warmup", "n_trials=5", "pruner.type=none", train_fn=must_not_run)
    assert len(stored(tmp_path)) == 5


def test_a_trial_the_pruner_stops_is_recorded_as_pruned(study_folders, tmp_path):
    # every validation loss is above 0: each trial is pruned at its first report, step 2
    sweep(study_folders, "n_trials=2", "pruner.type=threshold", "pruner.upper=0")
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [2] for t in trials)
    assert not (study_dir(tmp_path) / "trial_0" / "checkpoints" / "last.ckpt").exists()


def test_a_timeout_stops_starting_new_trials(study_folders, tmp_path, caplog):
    caplog.set_level("INFO", logger="lmforge.cli.sweep")

    def slow(cfg, extra_callbacks=()):
        time.sleep(0.6)
        return fake_train(cfg)

    sweep(study_folders, "n_trials=5", "timeout=0.5", train_fn=slow)
    assert len(stored(tmp_path)) == 1
    assert "timeout of 0.5 s reached: 4 of 5 trials left" in caplog.text


def test_a_failing_trial_is_recorded_and_the_study_goes_on(study_folders, tmp_path):
    calls = []

    def fails_once(cfg, extra_callbacks=()):
        calls.append(cfg.paths.output_dir)
        if len(calls) == 1:
            raise RuntimeError("out of memory, say")
        return fake_train(cfg)

    sweep(study_folders, "n_trials=3", train_fn=fails_once)
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["error"] == "RuntimeError: out of memory, say"
    assert calls == [str(study_dir(tmp_path) / f"trial_{n}") for n in range(3)]
    with open(study_dir(tmp_path) / "trials.csv") as handle:
        assert next(csv.DictReader(handle))["error"] == "RuntimeError: out of memory, say"


def test_a_trial_left_running_by_a_killed_process_is_marked_failed(study_folders, tmp_path, caplog):
    sweep(study_folders, "n_trials=1", train_fn=fake_train)
    url = f"sqlite:///{study_dir(tmp_path) / 'study.db'}"
    optuna.load_study(study_name="lr_warmup", storage=url).ask()  # a trial nobody will finish
    assert stored(tmp_path)[1].state == TrialState.RUNNING

    sweep(study_folders, "n_trials=3", train_fn=fake_train)
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert "left RUNNING" in trials[1].user_attrs["error"]
    assert "trial 1 (started" in caplog.text and "marked FAIL" in caplog.text


def test_a_resumed_study_refuses_other_train_overrides(study_folders, tmp_path):
    sweep(study_folders, "n_trials=1", train_fn=fake_train)
    with pytest.raises(ConfigError, match="study lr_warmup was started with train_overrides=") as caught:
        sweep(study_folders, "n_trials=2", "model.d_ff=128", train_fn=fake_train)
    assert caught.value.key == "train_overrides"
    with pytest.raises(ConfigError, match="created with direction=minimize"):
        sweep(study_folders, "n_trials=2", "direction=maximize", train_fn=fake_train)
    assert len(stored(tmp_path)) == 1


def test_a_second_process_on_the_same_study_is_refused(study_folders, tmp_path):
    folder = study_dir(tmp_path)
    folder.mkdir(parents=True)
    with study_lock(folder, "lr_warmup"), pytest.raises(ConfigError, match="being run by another process"):
        sweep(study_folders, "n_trials=1", train_fn=fake_train)
    sweep(study_folders, "n_trials=1", train_fn=fake_train)  # the lock is gone with its holder
    assert len(stored(tmp_path)) == 1


def test_a_sampled_value_that_makes_the_config_invalid_fails_only_that_trial(study_folders, tmp_path):
    settings, overrides = load_settings(["n_trials=3", "pruner.type=none", *TINY, *RUN, *study_folders])
    settings.params = {"model.n_heads": {"type": "categorical", "choices": [2, 3]}}
    run_study(settings, overrides)
    trials = stored(tmp_path)
    assert {t.params["model.n_heads"] for t in trials} == {2, 3}  # the draws of seed 42
    for trial in trials:
        bad = trial.params["model.n_heads"] == 3
        assert trial.state == (TrialState.FAIL if bad else TrialState.COMPLETE)
        assert ("does not divide model.d_model=32" in trial.user_attrs.get("error", "")) == bad


def test_a_metric_no_trial_logs_stops_the_study(study_folders, tmp_path):
    with pytest.raises(MetricNotLogged, match=r"metric=val/lost is not logged.*val/loss"):
        sweep(study_folders, "n_trials=3", "metric=val/lost")
    assert [t.state for t in stored(tmp_path)] == [TrialState.FAIL]


def test_the_command_line_resumes_a_study_after_a_kill(tmp_path, study_data_dir):
    """The real ``python sweep.py``: SIGKILL during trial 0, then the same command again."""
    args = [
        "sweep.py",
        "hparams_search=lr_warmup",
        "n_trials=2",
        *TINY,
        "trainer.max_steps=40",
        "trainer.val_check_interval=20",
        "+trainer.limit_val_batches=1",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.data_dir={study_data_dir}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    started = study_dir(tmp_path) / "trial_0" / ".hydra" / "config.yaml"
    with subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL) as first:
        deadline = time.monotonic() + 120
        while not started.is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, f"the sweep ended (status {first.returncode}) before trial 0 started"
        first.send_signal(signal.SIGKILL)
    assert stored(tmp_path)[0].state == TrialState.RUNNING

    again = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "trial 0 (started" in again.stdout and "marked FAIL" in again.stdout
    assert "1 trials finished (0 complete, 0 pruned, 1 failed); running 1 more for n_trials=2" in again.stdout
    assert "best trial 1: val/loss=" in again.stdout and "  optim.lr=" in again.stdout
    assert [t.state for t in stored(tmp_path)] == [TrialState.FAIL, TrialState.COMPLETE]
