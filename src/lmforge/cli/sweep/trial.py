"""The trial loop: a study runs trials until it holds ``n_trials`` finished ones; each trial is one
``train()`` run in its own folder, with the pruning callback."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from lmforge.cli.sweep.configs import check_train_config, compose_train, one_line, set_output_dir, train
from lmforge.cli.sweep.pruning import MetricNotLogged, PruningCallback, TrialDiverged
from lmforge.cli.sweep.report import FINISHED, count_states, format_param, report, write_tables
from lmforge.cli.sweep.settings import build_pruner, build_sampler, check_study_settings
from lmforge.cli.sweep.space import SearchParam, parse_search_space
from lmforge.cli.sweep.storage import fail_stale_trials, open_study, storage_url, study_lock

log = logging.getLogger(__package__)  # one logger for the package: its lines read [lmforge.cli.sweep]
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
TrainFn = Callable[..., float | None]


def run_study(
    settings: DictConfig, train_overrides: Sequence[str], train_fn: TrainFn | None = None
) -> optuna.Study:
    """Run the study of ``settings`` (from ``load_settings``) until it holds ``n_trials`` finished
    trials or ``timeout`` passes; returns it. ``train_fn`` replaces ``train`` (tests)."""
    check_study_settings(settings, train_overrides)
    n_trials, timeout, name = settings.n_trials, settings.timeout, str(settings.study_name)
    base_overrides = [*train_overrides, f"optimized_metric={settings.metric}"]

    base = compose_train(base_overrides)
    study_dir = Path(base.paths.log_dir).resolve() / "sweeps" / name
    set_output_dir(base, study_dir)
    check_train_config(base)
    space = parse_search_space(settings.params, base)
    pruner = build_pruner(settings.pruner)
    build_sampler(settings.sampler)  # checked now; it is seeded once the study's trials are known
    search = OmegaConf.to_container(settings.params, resolve=True)

    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(settings.storage, study_dir)
    with study_lock(study_dir, name), log_file(study_dir / "sweep.log"):
        study, storage = open_study(settings, url, study_dir, search, list(train_overrides))
        fail_stale_trials(study, storage)
        study.pruner = pruner
        study.sampler = build_sampler(settings.sampler, len(study.trials))
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        to_run = max(0, n_trials - len(finished))
        log.info(
            "study %s (%s): %d trials finished (%s); %s for n_trials=%d",
            name,
            url,
            len(finished),
            count_states(finished),
            f"running {to_run} more" if to_run else "nothing to run",
            n_trials,
        )
        started = time.monotonic()
        try:
            for done in range(to_run):
                if timeout is not None and time.monotonic() - started > timeout:
                    log.info("timeout of %s s reached: %d of %d trials left", timeout, to_run - done, to_run)
                    break
                run_trial(study, space, base_overrides, study_dir, settings.metric, train_fn or train)
                write_tables(study, study_dir, base_overrides)
        finally:
            write_tables(study, study_dir, base_overrides)
    report(study, study_dir, base_overrides)
    return study


def run_trial(
    study: optuna.Study,
    space: list[SearchParam],
    base_overrides: list[str],
    study_dir: Path,
    metric: str,
    train_fn: TrainFn,
) -> None:
    """One trial: sample, compose, train in ``<study dir>/trial_<number>``, tell the study how it went.

    A pruned trial is PRUNED; any other error makes it FAIL, logged, and the study goes on, except a
    metric the trials do not log, which would fail them all. An interrupt (Ctrl+C; Lightning turns it
    into ``SystemExit``) marks the trial FAIL before it stops the sweep, so it does not stay RUNNING.
    """
    trial = study.ask()
    values = {param.key: param.suggest(trial) for param in space}
    sampled = [param.override(values[param.key]) for param in space]
    trial_dir = study_dir / f"trial_{trial.number}"
    trial.set_user_attr("overrides", sampled)
    trial.set_user_attr("output_dir", str(trial_dir))
    shown = " ".join(f"{key}={format_param(value)}" for key, value in values.items())
    log.info("trial %d: %s -> %s", trial.number, shown, trial_dir)
    started = time.monotonic()
    pruning = PruningCallback(trial, metric)
    try:
        cfg = set_output_dir(compose_train([*base_overrides, *sampled]), trial_dir)
        (trial_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, trial_dir / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create([*base_overrides, *sampled]), trial_dir / ".hydra" / "overrides.yaml")
        with log_file(trial_dir / "train.log"):
            value = train_fn(cfg, extra_callbacks=[pruning])
        if value is None:
            raise MetricNotLogged("metric", f"metric={metric} was not logged: the trial never validated")
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED)
        log.info("trial %d pruned after %.1f s: %s", trial.number, time.monotonic() - started, pruned)
    except MetricNotLogged as error:
        fail(study, trial, error)
        raise
    except (KeyboardInterrupt, SystemExit) as error:
        fail(study, trial, error, reason="interrupted; the same command continues the study")
        raise
    except Exception as error:
        fail(study, trial, error)
    else:
        if not math.isfinite(value):
            fail(study, trial, TrialDiverged(f"{metric}={value}: the run diverged"))
        else:
            study.tell(trial, value)
            best = study.best_trial
            log.info(
                "trial %d: %s=%.4f in %.1f s (best: trial %d, %.4f)",
                trial.number,
                metric,
                value,
                time.monotonic() - started,
                best.number,
                best.value,
            )
    finally:
        gc.collect()  # the next trial builds a new model and trainer


def fail(study: optuna.Study, trial: optuna.Trial, error: BaseException, reason: str | None = None) -> None:
    message = reason or f"{type(error).__name__}: {one_line(error)}"
    trial.set_user_attr("error", message)
    study.tell(trial, state=TrialState.FAIL)
    log.error("trial %d failed: %s", trial.number, message, exc_info=reason is None)


@contextlib.contextmanager
def log_file(path: Path) -> Iterator[None]:
    """Also write what is logged meanwhile to ``path`` (``train.py`` runs get a log file from Hydra)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
