"""Optuna studies over train.py's config: resume from SQLite, pruning, failures, stale trials, bad spaces."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lmforge.cli.errors import exit_on_config_error
from lmforge.cli.sweep.cli import load_settings, split_overrides
from lmforge.cli.sweep.configs import compose_sweep, compose_train
from lmforge.cli.sweep.pruning import MetricNotLogged, PruningCallback, TrialDiverged
from lmforge.cli.sweep.settings import build_pruner
from lmforge.cli.sweep.storage import study_lock
from lmforge.cli.sweep.trial import run_study
from lmforge.errors import ConfigError

from .conftest import ROOT, TINY

# Six steps, validated at steps 2, 4 and 6 on one batch: a trial takes about a second on one thread.
RUN = [
    "trainer.max_steps=6",
    "trainer.val_check_interval=2",
    "+trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "logger=csv",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One data cache for the module: the tokenizer is trained once, every later trial reuses it."""
    return tmp_path_factory.mktemp("sweep-data")


@pytest.fixture
def folders(tmp_path, data_dir) -> list[str]:
    return [f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={data_dir}"]


def sweep(folders: list[str], *args: str, train_fn=None) -> optuna.Study:
    settings, overrides = load_settings([*args, *TINY, *RUN, *folders])
    return run_study(settings, overrides, train_fn)


def fake_train(cfg, extra_callbacks=()):
    """Stands in for train() where the training itself is not under test: a value from the lr."""
    return float(cfg.optim.lr)


def study_dir(tmp_path: Path, name: str = "lr_warmup") -> Path:
    return tmp_path / "logs" / "sweeps" / name


def stored(tmp_path: Path, name: str = "lr_warmup") -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{study_dir(tmp_path, name) / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url).trials


def test_a_study_continues_from_its_storage_to_n_trials_in_total(folders, tmp_path, caplog):
    caplog.set_level("INFO", logger="lmforge.cli.sweep")
    sweep(folders, "hparams_search=lr_warmup", "n_trials=3", "pruner.type=none")
    first = [(t.number, t.state, t.value, t.params) for t in stored(tmp_path)]
    assert [state for _, state, _, _ in first] == [TrialState.COMPLETE] * 3

    sweep(folders, "hparams_search=lr_warmup", "n_trials=5", "pruner.type=none")
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

    sweep(folders, "hparams_search=lr_warmup", "n_trials=5", "pruner.type=none", train_fn=must_not_run)
    assert len(stored(tmp_path)) == 5


def test_a_trial_the_pruner_stops_is_recorded_as_pruned(folders, tmp_path):
    # every validation loss is above 0: each trial is pruned at its first report, step 2
    sweep(folders, "n_trials=2", "pruner.type=threshold", "pruner.upper=0")
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [2] for t in trials)
    assert not (study_dir(tmp_path) / "trial_0" / "checkpoints" / "last.ckpt").exists()


def validate(callback: PruningCallback, value: float, step: int, sanity: bool = False) -> None:
    """What Lightning calls after a validation, with the metrics it logged."""
    trainer = SimpleNamespace(
        sanity_checking=sanity, callback_metrics={"val/loss": torch.tensor(value)}, global_step=step
    )
    callback.on_validation_end(trainer, None)


def test_the_pruning_callback_reports_every_validation_and_prunes_a_worse_trial():
    pruner = build_pruner(compose_sweep(["pruner.type=median", "pruner.n_startup_trials=1"]).pruner)
    study = optuna.create_study(pruner=pruner)
    first = study.ask()
    callback = PruningCallback(first, "val/loss")
    validate(callback, 99.0, 0, sanity=True)  # the sanity check runs an untrained model: not reported
    validate(callback, 2.0, 10)
    validate(callback, 2.0, 10)  # the last step can also be an interval step: reported once
    validate(callback, 1.0, 20)
    study.tell(first, 1.0)
    assert study.trials[0].intermediate_values == {10: 2.0, 20: 1.0}

    callback = PruningCallback(study.ask(), "val/loss")
    validate(callback, 1.5, 10)  # better than the first trial at step 10: goes on
    with pytest.raises(optuna.TrialPruned, match=r"val/loss=3\.0000 at step 20"):
        validate(callback, 3.0, 20)
    with pytest.raises(TrialDiverged, match="val/loss is nan at step 10"):
        validate(PruningCallback(study.ask(), "val/loss"), float("nan"), 10)


def test_a_timeout_stops_starting_new_trials(folders, tmp_path, caplog):
    caplog.set_level("INFO", logger="lmforge.cli.sweep")

    def slow(cfg, extra_callbacks=()):
        time.sleep(0.6)
        return fake_train(cfg)

    sweep(folders, "n_trials=5", "timeout=0.5", train_fn=slow)
    assert len(stored(tmp_path)) == 1
    assert "timeout of 0.5 s reached: 4 of 5 trials left" in caplog.text


def test_a_failing_trial_is_recorded_and_the_study_goes_on(folders, tmp_path):
    calls = []

    def fails_once(cfg, extra_callbacks=()):
        calls.append(cfg.paths.output_dir)
        if len(calls) == 1:
            raise RuntimeError("out of memory, say")
        return fake_train(cfg)

    sweep(folders, "n_trials=3", train_fn=fails_once)
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["error"] == "RuntimeError: out of memory, say"
    assert calls == [str(study_dir(tmp_path) / f"trial_{n}") for n in range(3)]
    with open(study_dir(tmp_path) / "trials.csv") as handle:
        assert next(csv.DictReader(handle))["error"] == "RuntimeError: out of memory, say"


def test_a_sampled_value_that_makes_the_config_invalid_fails_only_that_trial(folders, tmp_path):
    settings, overrides = load_settings(["n_trials=3", "pruner.type=none", *TINY, *RUN, *folders])
    settings.params = {"model.n_heads": {"type": "categorical", "choices": [2, 3]}}
    run_study(settings, overrides)
    trials = stored(tmp_path)
    assert {t.params["model.n_heads"] for t in trials} == {2, 3}  # the draws of seed 42
    for trial in trials:
        bad = trial.params["model.n_heads"] == 3
        assert trial.state == (TrialState.FAIL if bad else TrialState.COMPLETE)
        assert ("does not divide model.d_model=32" in trial.user_attrs.get("error", "")) == bad


def test_a_trial_left_running_by_a_killed_process_is_marked_failed(folders, tmp_path, caplog):
    sweep(folders, "n_trials=1", train_fn=fake_train)
    url = f"sqlite:///{study_dir(tmp_path) / 'study.db'}"
    optuna.load_study(study_name="lr_warmup", storage=url).ask()  # a trial nobody will finish
    assert stored(tmp_path)[1].state == TrialState.RUNNING

    sweep(folders, "n_trials=3", train_fn=fake_train)
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert "left RUNNING" in trials[1].user_attrs["error"]
    assert "trial 1 (started" in caplog.text and "marked FAIL" in caplog.text


def test_a_metric_no_trial_logs_stops_the_study(folders, tmp_path):
    with pytest.raises(MetricNotLogged, match=r"metric=val/lost is not logged.*val/loss"):
        sweep(folders, "n_trials=3", "metric=val/lost")
    assert [t.state for t in stored(tmp_path)] == [TrialState.FAIL]


def test_a_resumed_study_refuses_other_train_overrides(folders, tmp_path):
    sweep(folders, "n_trials=1", train_fn=fake_train)
    with pytest.raises(ConfigError, match="study lr_warmup was started with train_overrides=") as caught:
        sweep(folders, "n_trials=2", "model.d_ff=128", train_fn=fake_train)
    assert caught.value.key == "train_overrides"
    with pytest.raises(ConfigError, match="created with direction=minimize"):
        sweep(folders, "n_trials=2", "direction=maximize", train_fn=fake_train)
    assert len(stored(tmp_path)) == 1


def test_a_second_process_on_the_same_study_is_refused(folders, tmp_path):
    folder = study_dir(tmp_path)
    folder.mkdir(parents=True)
    with study_lock(folder, "lr_warmup"), pytest.raises(ConfigError, match="being run by another process"):
        sweep(folders, "n_trials=1", train_fn=fake_train)
    sweep(folders, "n_trials=1", train_fn=fake_train)  # the lock is gone with its holder
    assert len(stored(tmp_path)) == 1


def test_trial_folders_without_their_study_are_not_overwritten(folders, tmp_path):
    (study_dir(tmp_path) / "trial_0").mkdir(parents=True)  # e.g. study.db was deleted by hand
    with pytest.raises(ConfigError, match=r"holds trial folders but .* has no study lr_warmup"):
        sweep(folders, "n_trials=1", train_fn=fake_train)


def test_a_bad_train_override_stops_before_any_trial(folders, tmp_path, capsys):
    settings, overrides = load_settings(["n_trials=2", *TINY, *RUN, *folders, "model.n_heads=5"])
    with pytest.raises(SystemExit) as caught:
        exit_on_config_error(lambda: run_study(settings, overrides, fake_train))
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: model.n_heads=5 does not divide model.d_model=32") and "\n" not in error
    assert not (tmp_path / "logs").exists()


def test_a_bad_search_space_stops_the_sweep_before_the_study_is_created(folders, tmp_path):
    settings, overrides = load_settings(["n_trials=2", *TINY, *folders])
    settings.params["optim.lr"].low = 1.0
    with pytest.raises(ConfigError, match=r"params.optim.lr: low=1.0 must be below high=0.01"):
        run_study(settings, overrides, fake_train)
    assert not study_dir(tmp_path).exists()


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["pruner.type=hyperband"], "pruner.type", "is not one of median, threshold, none"),
        (["pruner.type=threshold"], "pruner", "needs pruner.upper or pruner.lower"),
        (["+pruner.patience=3"], "pruner", "unknown setting patience"),
        (["sampler.type=grid"], "sampler.type", "is not one of tpe, random"),
        (["n_trials=0"], "n_trials", "must be a positive integer"),
        (["direction=down"], "direction", "is not one of minimize, maximize"),
        (["study_name=a/b"], "study_name", "letters, digits"),
        (["optimized_metric=val/nsp_acc"], "optimized_metric", "give metric="),
        (["trainer.devices=2"], "trainer.devices", "one device"),
        (["plan=true"], "plan", "trains nothing"),
    ],
)
def test_bad_study_settings_are_named(overrides, key, words, folders):
    with pytest.raises(ConfigError) as caught:
        sweep(folders, *overrides, train_fn=fake_train)
    assert caught.value.key == key and words in str(caught.value)


def test_the_command_line_splits_into_study_and_train_overrides():
    sweep_keys = {"hparams_search", *compose_sweep([]).keys()}
    train_keys = set(compose_train([]).keys()) - {"hydra"}
    assert not sweep_keys & train_keys, "a key in both configs could not be told apart on the command line"
    args = ["hparams_search=lr_warmup", "n_trials=30", "model=bert_mini", "trainer.max_steps=800"]
    args += ["pruner.n_warmup_steps=100", "+trainer.limit_val_batches=2", "~logger"]
    assert split_overrides(args, sweep_keys) == (
        ["hparams_search=lr_warmup", "n_trials=30", "pruner.n_warmup_steps=100"],
        ["model=bert_mini", "trainer.max_steps=800", "+trainer.limit_val_batches=2", "~logger"],
    )
    assert compose_sweep(["hparams_search=model_shape"]).study_name == "model_shape"


def test_the_command_line_resumes_a_study_after_a_kill(tmp_path, data_dir):
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
        f"paths.data_dir={data_dir}",
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
