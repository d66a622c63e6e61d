"""Helpers of the Optuna study tests: a study of tiny trials, its folder and its stored trials."""

from __future__ import annotations

from pathlib import Path

import optuna

from lmforge.cli.sweep.cli import load_settings
from lmforge.cli.sweep.trial import run_study
from tests.conftest import TINY

# Six steps, validated at steps 2, 4 and 6 on one batch: a trial takes about a second on one thread.
RUN = [
    "trainer.max_steps=6",
    "trainer.val_check_interval=2",
    "+trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "logger=csv",
]


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
