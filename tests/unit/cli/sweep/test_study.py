"""sweep.py before any trial: the command line split into study and train overrides, every bad setting
refused before a trial, and the pruning callback. Studies that run trials: integration/test_sweeps.py."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import torch

from lmforge.cli.errors import exit_on_config_error
from lmforge.cli.sweep.cli import load_settings, split_overrides
from lmforge.cli.sweep.configs import compose_sweep, compose_train
from lmforge.cli.sweep.pruning import PruningCallback, TrialDiverged
from lmforge.cli.sweep.settings import build_pruner
from lmforge.cli.sweep.trial import run_study
from lmforge.errors import ConfigError
from tests.conftest import TINY
from tests.support.sweeps import RUN, fake_train, study_dir, sweep


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


def test_trial_folders_without_their_study_are_not_overwritten(study_folders, tmp_path):
    (study_dir(tmp_path) / "trial_0").mkdir(parents=True)  # e.g. study.db was deleted by hand
    with pytest.raises(ConfigError, match=r"holds trial folders but .* has no study lr_warmup"):
        sweep(study_folders, "n_trials=1", train_fn=fake_train)


def test_a_bad_train_override_stops_before_any_trial(study_folders, tmp_path, capsys):
    settings, overrides = load_settings(["n_trials=2", *TINY, *RUN, *study_folders, "model.n_heads=5"])
    with pytest.raises(SystemExit) as caught:
        exit_on_config_error(lambda: run_study(settings, overrides, fake_train))
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: model.n_heads=5 does not divide model.d_model=32") and "\n" not in error
    assert not (tmp_path / "logs").exists()


def test_a_bad_search_space_stops_the_sweep_before_the_study_is_created(study_folders, tmp_path):
    settings, overrides = load_settings(["n_trials=2", *TINY, *study_folders])
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
def test_bad_study_settings_are_named(overrides, key, words, study_folders):
    with pytest.raises(ConfigError) as caught:
        sweep(study_folders, *overrides, train_fn=fake_train)
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
