"""The study's own settings (``conf/sweep.yaml``): trials, timeout, direction, name, sampler, pruner."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from lmforge.errors import ConfigError

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SAMPLER_FIELDS = {"tpe": {"seed", "n_startup_trials"}, "random": {"seed"}}
PRUNER_FIELDS = {
    "median": {"n_startup_trials", "n_warmup_steps"},
    "threshold": {"lower", "upper", "n_warmup_steps"},
    "none": set(),
}


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
