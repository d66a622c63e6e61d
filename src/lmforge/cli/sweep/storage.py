"""Where a study lives: its folder, held by one process at a time, and its Optuna storage (SQLite)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from lmforge.errors import ConfigError

log = logging.getLogger(__package__)  # one logger for the package: its lines read [lmforge.cli.sweep]


@contextlib.contextmanager
def study_lock(study_dir: Path, study_name: str) -> Iterator[None]:
    """Hold an exclusive lock on the study folder while this process runs it.

    Trials left RUNNING are marked FAIL on start, which is only right when no other process is
    running them: a second process on the same study is refused instead. The kernel drops the lock
    when its holder dies, even by SIGKILL, so a killed sweep never blocks the next one.
    """
    path = study_dir / "sweep.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ConfigError(
                "study_name",
                f"study {study_name} is being run by another process (pid {holder}, lock {path}): "
                "wait for it, or give another study_name=",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def storage_url(storage: str | None, study_dir: Path) -> str:
    """``null``: SQLite in the study folder; a URL as given; any other text: a SQLite file path."""
    if storage is None:
        return f"sqlite:///{study_dir / 'study.db'}"
    if "://" in storage:
        return storage
    path = Path(storage).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(
    settings: DictConfig, url: str, study_dir: Path, search: dict[str, Any], train_overrides: list[str]
) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """Create the study, or load it and check that this command continues the same experiment.

    Trials of one study are only comparable when they train the same thing: a different metric,
    direction, search space or set of train overrides is refused rather than mixed in.
    """
    storage = optuna.storages.get_storage(url)
    name = settings.study_name
    try:
        storage.get_study_id_from_name(name)
        exists = True
    except KeyError:
        exists = False
    if not exists and any(study_dir.glob("trial_*")):
        raise ConfigError(
            "study_name",
            f"{study_dir} holds trial folders but {url} has no study {name}: remove the folder, "
            "or give another study_name=",
        )
    study = optuna.create_study(
        storage=storage, study_name=name, direction=settings.direction, load_if_exists=True
    )
    expected = {
        "metric": settings.metric,
        "search_space": search,
        "train_overrides": sorted(train_overrides),
    }
    if not exists:
        for key, value in expected.items():
            study.set_user_attr(key, value)
        return study, storage
    stored_direction = study.direction.name.lower()
    if stored_direction != settings.direction:
        raise ConfigError(
            "direction",
            f"study {name} was created with direction={stored_direction}: give that, or a new study_name=",
        )
    for key, value in expected.items():
        if key in study.user_attrs and study.user_attrs[key] != value:
            raise ConfigError(
                key if key != "search_space" else "params",
                f"study {name} was started with {key}={study.user_attrs[key]}, this command gives {value}: "
                "repeat the first command's settings to continue it, or give a new study_name=",
            )
    return study, storage


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """Trials still RUNNING belong to a process that died (the lock proves none is alive): FAIL them."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        message = "left RUNNING by a sweep process that stopped; marked FAIL when the study was resumed"
        storage.set_trial_user_attr(trial._trial_id, "error", message)  # optuna has no public trial id
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        log.warning("trial %d (started %s) was %s", trial.number, trial.datetime_start, message)
