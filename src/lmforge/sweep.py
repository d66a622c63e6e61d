"""Hyper-parameter search: ``python sweep.py hparams_search=lr_warmup n_trials=30 [train.py overrides]``.

An Optuna study whose trials are ordinary ``train()`` runs. Hydra composes two configs: the study's
(``conf/sweep.yaml`` with a search space from ``conf/hparams_search/``) and, for each trial,
``conf/train.yaml`` with the command line's train overrides plus the sampled values. The study lives
in SQLite under ``<paths.log_dir>/sweeps/<study_name>/``: the same command started again continues it
up to ``n_trials`` finished trials.

Why not ``hydra-optuna-sweeper``: it pins optuna 2.10, whose SQLite storage fails under SQLAlchemy 2,
so its studies cannot be resumed. Driving Optuna from Hydra's compose API needs no plugin.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import gc
import logging
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

try:
    import optuna
    from optuna.trial import FrozenTrial, TrialState
except ModuleNotFoundError as missing:  # an optional extra: say how to get it
    raise ModuleNotFoundError(
        "python sweep.py needs Optuna: pip install -c constraints.txt -e '.[sweep]'", name="optuna"
    ) from missing

from lmforge.cli.errors import exit_on_config_error
from lmforge.cli.runtime import keep_freed_memory
from lmforge.cli.train import CONFIG_DIR, check_run, train
from lmforge.errors import ConfigError

log = logging.getLogger("lmforge.sweep")

USAGE = """\
usage: python sweep.py [hparams_search=NAME] [n_trials=N] [SWEEP KEY=VALUE ...] [TRAIN OVERRIDES ...]

Runs an Optuna study over train.py's config, or continues it: the same command started again runs
only the trials still missing to reach n_trials. Keys of conf/sweep.yaml (study_name, n_trials,
timeout, storage, direction, metric, sampler.*, pruner.*, params.*) and hparams_search= set the
study; every other argument is a train.py override, e.g.
  python sweep.py hparams_search=lr_warmup n_trials=30 model=bert_mini trainer.max_steps=800
Search spaces: conf/hparams_search/. The study, its trials and its tables: logs/sweeps/<study_name>/.
"""

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
PARAM_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
SAMPLER_FIELDS = {"tpe": {"seed", "n_startup_trials"}, "random": {"seed"}}
PRUNER_FIELDS = {
    "median": {"n_startup_trials", "n_warmup_steps"},
    "threshold": {"lower", "upper", "n_warmup_steps"},
    "none": set(),
}
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class MetricNotLogged(ConfigError):
    """The study's metric is not among what a trial logs: every trial would fail, so the study stops."""


class TrialDiverged(RuntimeError):
    """The metric became NaN or infinite: the trial fails at once instead of training on."""


# ----------------------------------------------------------------------------- the command line


def split_overrides(args: Sequence[str], sweep_keys: set[str]) -> tuple[list[str], list[str]]:
    """Sort the command line into the study's overrides and train.py's, by each override's first key."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(args))
    except HydraException as error:
        raise ConfigError(None, f"cannot read the command line: {one_line(error)}") from None
    sweep, train_overrides = [], []
    for arg, override in zip(args, parsed, strict=True):
        top = override.key_or_group.split(".")[0].split("/")[0]
        (sweep if top in sweep_keys else train_overrides).append(arg)
    return sweep, train_overrides


def compose_sweep(overrides: Sequence[str]) -> DictConfig:
    """``conf/sweep.yaml`` with its search space; ``study_name`` defaults to the search space's name."""
    with hydra_context():
        try:
            cfg = compose("sweep", overrides=list(overrides), return_hydra_config=True)
        except HydraException as error:
            raise ConfigError(None, f"cannot compose the sweep config: {one_line(error)}") from None
    choice = cfg.hydra.runtime.choices.get("hparams_search")
    with open_dict(cfg):
        del cfg["hydra"]
        if cfg.get("study_name") is None:
            cfg.study_name = choice
    return cfg


def load_settings(args: Sequence[str]) -> tuple[DictConfig, list[str]]:
    """The study's settings and the train overrides, from a command line that mixes both."""
    choice = [arg for arg in args if arg.split("=", 1)[0].lstrip("+~") == "hparams_search"]
    sweep_keys = {"hparams_search", *compose_sweep(choice).keys()}
    sweep_overrides, train_overrides = split_overrides(args, sweep_keys)
    return compose_sweep(sweep_overrides), train_overrides


def one_line(error: BaseException) -> str:
    """An error's message on one line, without the config search path Hydra appends to it."""
    return " ".join(str(error).split("Config search path:")[0].split())


@contextlib.contextmanager
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield


# ----------------------------------------------------------------------------- the train config


def compose_train(overrides: Sequence[str]) -> DictConfig:
    """``conf/train.yaml`` as ``python train.py`` composes it, still holding its ``hydra`` node."""
    with hydra_context():
        try:
            return compose("train", overrides=list(overrides), return_hydra_config=True)
        except HydraException as error:
            raise ConfigError(None, f"cannot compose the train config: {one_line(error)}") from None


def set_output_dir(cfg: DictConfig, output_dir: Path) -> DictConfig:
    """Make ``output_dir`` the run's folder and drop the ``hydra`` node, as ``@hydra.main`` would.

    ``paths.output_dir`` reads ``${hydra:runtime.output_dir}``, which only a Hydra run sets: compose
    leaves it empty, so it is set here and the Hydra config installed for the resolver to read.
    """
    with open_dict(cfg):
        cfg.hydra.run.dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):  # train() never sees the hydra node
        del cfg["hydra"]
    return cfg


def check_train_config(cfg: DictConfig) -> None:
    """What ``train()`` checks before reading data, run once before any trial so that a bad train
    override stops the sweep with one line instead of failing every trial."""
    check_run(cfg)
    if cfg.get("plan"):
        raise ConfigError("plan", "plan=true prints a run's costs and trains nothing: run it with train.py")
    devices = cfg.trainer.get("devices", 1)
    if str(devices) != "1":
        raise ConfigError(
            "trainer.devices",
            f"trainer.devices={devices}: a sweep trains each trial on one device (the pruning callback "
            "reports from one process); set trainer.devices=1",
        )


# ----------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class SearchParam:
    """One train config key and its distribution: ``float``/``int`` in [low, high] or ``categorical``."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def override(self, value: Any) -> str:
        return f"{self.key}={override_value(value)}"


def override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back unchanged (a string that would read as
    something else, such as ``"3"`` or ``"null"``, is quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    with contextlib.suppress(HydraException):
        if OverridesParser.create().parse_override(f"key={text}").value() == text:
            return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_search_space(params: DictConfig | None, train_cfg: DictConfig) -> list[SearchParam]:
    """Validate ``params`` against the composed train config: every mistake is a ``ConfigError``
    naming ``params.<key>``, raised before any trial runs."""
    if not params:
        raise ConfigError(
            "params",
            "the search space is empty: choose one with hparams_search=<name> "
            f"(conf/hparams_search/: {', '.join(search_spaces())})",
        )
    return [parse_param(str(key), spec, train_cfg) for key, spec in params.items()]


def search_spaces() -> list[str]:
    return sorted(path.stem for path in Path(CONFIG_DIR, "hparams_search").glob("*.yaml"))


def parse_param(key: str, spec: Any, train_cfg: DictConfig) -> SearchParam:
    """One ``params`` entry, checked for what Optuna would refuse mid-study and for what the train
    config cannot take (a key it lacks, a float for an integer, a preset that does not exist)."""
    name = f"params.{key}"
    if not isinstance(spec, DictConfig) or "type" not in spec:
        raise ConfigError(name, f"{name} must be a mapping with a type: float | int | categorical")
    spec = OmegaConf.to_container(spec, resolve=True)
    kind = spec["type"]
    if kind not in PARAM_FIELDS:
        raise ConfigError(name, f"{name}.type={kind!r} is not one of float, int, categorical")
    unknown = sorted(set(spec) - PARAM_FIELDS[kind])
    if unknown:
        raise ConfigError(
            name,
            f"{name}: {', '.join(unknown)} is not a setting of a {kind} parameter "
            f"(settings: {', '.join(sorted(PARAM_FIELDS[kind]))})",
        )

    missing = object()
    current = OmegaConf.select(train_cfg, key, default=missing)
    is_group = Path(CONFIG_DIR, *key.split(".")).is_dir()
    if current is missing and not is_group:
        raise ConfigError(name, f"{name}: {key} is not a key of the train config (conf/train.yaml)")

    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(name, f"{name}.choices must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ConfigError(name, f"{name}.choices: {choice!r} is not a number, string, bool or null")
        if is_group:
            options = sorted(p.stem for p in Path(CONFIG_DIR, *key.split(".")).glob("*.yaml"))
            absent = [str(c) for c in choices if str(c) not in options]
            if absent:
                raise ConfigError(
                    name, f"{name}.choices: {', '.join(absent)} not in conf/{key}/ ({', '.join(options)})"
                )
        return SearchParam(key, kind, choices=tuple(choices))

    if is_group or isinstance(current, (DictConfig, ListConfig)):
        raise ConfigError(
            name,
            f"{name}: {key} is a config node, not a number: sample one of its values "
            f"({key}.<name>), or presets with type: categorical",
        )
    low, high, log_scale, step = (
        spec.get("low"),
        spec.get("high"),
        bool(spec.get("log", False)),
        spec.get("step"),
    )
    number = int if kind == "int" else (int, float)
    for field, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            raise ConfigError(name, f"{name}.{field} must be {'an integer' if kind == 'int' else 'a number'}")
    if low >= high:
        raise ConfigError(name, f"{name}: low={low} must be below high={high}")
    if log_scale and low <= 0:
        raise ConfigError(name, f"{name}: log: true needs low > 0 (got low={low})")
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise ConfigError(name, f"{name}.step must be a positive {'integer' if kind == 'int' else 'number'}")
    if log_scale and step is not None and (kind == "float" or step != 1):
        raise ConfigError(
            name, f"{name}: log: true and a step cannot be combined (Optuna samples one or the other)"
        )
    if kind == "float" and isinstance(current, int) and not isinstance(current, bool):
        raise ConfigError(
            name, f"{name}: {key} is an integer ({current}) in the train config: use type: int or categorical"
        )
    return SearchParam(key, kind, low=low, high=high, log=log_scale, step=step)


# ----------------------------------------------------------------------------- sampler and pruner


def checked_fields(node: DictConfig, name: str, fields: dict[str, set[str]]) -> tuple[str, dict[str, Any]]:
    """``node.type`` and the settings that type uses; settings of no type are refused (typos)."""
    settings = OmegaConf.to_container(node, resolve=True)
    kind = settings.pop("type", None)
    if kind not in fields:
        raise ConfigError(f"{name}.type", f"{name}.type={kind!r} is not one of {', '.join(fields)}")
    known = set().union(*fields.values())
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            name, f"{name}: unknown setting {', '.join(unknown)} (settings: {', '.join(sorted(known))})"
        )
    return kind, {k: v for k, v in settings.items() if k in fields[kind]}


def build_sampler(node: DictConfig, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler, seeded with ``seed + trials_so_far``: a resumed run draws new values instead of
    replaying the random start of the first run (a sampler's draws depend on its seed only)."""
    kind, settings = checked_fields(node, "sampler", SAMPLER_FIELDS)
    if settings.get("seed") is not None:
        settings["seed"] += trials_so_far
    if kind == "tpe":
        return optuna.samplers.TPESampler(**settings)
    return optuna.samplers.RandomSampler(**settings)


def build_pruner(node: DictConfig) -> optuna.pruners.BasePruner:
    kind, settings = checked_fields(node, "pruner", PRUNER_FIELDS)
    if kind == "median":
        return optuna.pruners.MedianPruner(**settings)
    if kind == "threshold":
        if settings.get("lower") is None and settings.get("upper") is None:
            raise ConfigError("pruner", "pruner.type=threshold needs pruner.upper or pruner.lower")
        return optuna.pruners.ThresholdPruner(**settings)
    return optuna.pruners.NopPruner()


class PruningCallback(Callback):
    """Reports the study's metric to the trial after each validation, at the training step, and stops
    the run with ``optuna.TrialPruned`` when the pruner says the trial will not beat the others.

    Written here rather than taken from optuna-integration, which would be one more package for ten
    lines. The sanity check before training is skipped: it runs on a model that has not trained.
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.last_step: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
            raise MetricNotLogged(
                "metric",
                f"metric={self.metric} is not logged by validation: "
                f"set metric to one of {logged or '(none)'}",
            )
        value, step = float(value), trainer.global_step
        if not math.isfinite(value):
            raise TrialDiverged(f"{self.metric} is {value} at step {step}: the run diverged")
        if step == self.last_step:  # the last step can also be a validation interval
            return
        self.trial.report(value, step)
        self.last_step = step
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric}={value:.4f} at step {step}")


# ----------------------------------------------------------------------------- the study


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


def count_states(trials: Sequence[FrozenTrial]) -> str:
    counts = {state: sum(t.state == state for t in trials) for state in FINISHED}
    return (
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed"
    )


def check_study_settings(settings: DictConfig, train_overrides: Sequence[str]) -> None:
    """The study's own settings, checked before anything is composed, trained or written."""
    n_trials, timeout = settings.n_trials, settings.timeout
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError("n_trials", f"n_trials={n_trials} must be a positive integer")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError("timeout", f"timeout={timeout} must be a positive number of seconds, or null")
    if settings.direction not in ("minimize", "maximize"):
        raise ConfigError("direction", f"direction={settings.direction!r} is not one of minimize, maximize")
    name = str(settings.study_name)
    if not STUDY_NAME.fullmatch(name):
        raise ConfigError("study_name", f"study_name={name!r}: use letters, digits, '_', '.', '-' only")
    if any(o.split("=", 1)[0].lstrip("+~") == "optimized_metric" for o in train_overrides):
        raise ConfigError(
            "optimized_metric", "the sweep sets optimized_metric from its metric: give metric=..."
        )


def run_study(
    settings: DictConfig, train_overrides: Sequence[str], train_fn: Callable[..., float | None] | None = None
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
    train_fn: Callable[..., float | None],
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


# ----------------------------------------------------------------------------- results


def trial_rows(study: optuna.Study) -> tuple[list[str], list[dict[str, Any]]]:
    params = list(dict.fromkeys(key for trial in study.trials for key in trial.params))
    header = ["number", "state", "value", "step", "duration_s", *params, "error"]
    rows = []
    for trial in study.trials:
        steps = trial.intermediate_values
        duration = trial.duration.total_seconds() if trial.duration else None
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": "" if trial.value is None else f"{trial.value:.6g}",
                "step": max(steps) if steps else "",
                "duration_s": "" if duration is None else f"{duration:.1f}",
                **{key: format_param(trial.params.get(key)) for key in params},
                "error": trial.user_attrs.get("error", ""),
            }
        )
    return header, rows


def format_param(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    return study.best_trial if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def rerun_command(trial: FrozenTrial, base_overrides: list[str]) -> str:
    overrides = [o for o in base_overrides if not o.startswith("optimized_metric=")]
    return shlex.join(["python", "train.py", *overrides, *trial.user_attrs.get("overrides", [])])


def write_tables(study: optuna.Study, study_dir: Path, base_overrides: list[str]) -> None:
    """``trials.csv`` and ``summary.md`` in the study folder, rewritten after every trial, so that a
    killed sweep still leaves them current."""
    header, rows = trial_rows(study)
    with open(study_dir / "trials.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)

    metric = study.user_attrs.get("metric", "value")
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    lines = [
        f"# Study {study.study_name}",
        "",
        f"{study.direction.name.lower()} {metric}; "
        f"{len(finished)} trials finished ({count_states(finished)}).",
        "",
    ]
    best = best_trial(study)
    if best is not None:
        lines += [
            f"Best: trial {best.number}, {metric}={best.value:.6g}. Train it again:",
            "",
            "```bash",
            rerun_command(best, base_overrides),
            "```",
            "",
        ]
    cells = [[str(row[key]).replace("|", "\\|") for key in header] for row in rows]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    (study_dir / "summary.md").write_text("\n".join(lines) + "\n")


def report(study: optuna.Study, study_dir: Path, base_overrides: list[str]) -> None:
    """Print the study's outcome and the best trial's parameters (the tables hold every trial)."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    metric = study.user_attrs.get("metric", "value")
    print(
        f"study {study.study_name}: {len(finished)} trials finished ({count_states(finished)}) in {study_dir}"
    )
    best = best_trial(study)
    if best is None:
        print("no trial completed: see the errors in trials.csv")
        return
    print(f"best trial {best.number}: {metric}={best.value:.6g}")
    for key, value in best.params.items():
        print(f"  {key}={format_param(value)}")
    print(f"train it again: {rerun_command(best, base_overrides)}")
    print(f"every trial: {study_dir / 'summary.md'} and trials.csv")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args):
        print(USAGE, end="")
        return
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep logs each trial itself
    exit_on_config_error(lambda: run_study(*load_settings(args)))


if __name__ == "__main__":
    main()
