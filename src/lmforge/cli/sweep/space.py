"""The search space: ``params`` of ``conf/hparams_search/<name>.yaml``, checked against the train config.

Each entry maps a train config key to a distribution. The checks are two tables: ``SETTINGS`` (what
each setting of a parameter type accepts) and ``RULES`` (what the settings must satisfy together and
against the train config). Every mistake is a ``ConfigError`` naming ``params.<key>``, raised before
the study is created, instead of an Optuna or Hydra error in the middle of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf

from lmforge.cli.sweep.configs import group_presets, override_value
from lmforge.errors import ConfigError


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


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_choice_list(value: Any) -> bool:
    scalar = (bool, int, float, str)
    return isinstance(value, list) and bool(value) and all(v is None or isinstance(v, scalar) for v in value)


@dataclass(frozen=True)
class Setting:
    """One setting of a parameter type: whether it must be given, and what a given value must be."""

    required: bool
    accepts: Callable[[Any], bool]
    must_be: str


NUMBER = Setting(True, is_number, "a number")
INTEGER = Setting(True, is_integer, "an integer")
LOG = Setting(False, lambda value: isinstance(value, bool), "true or false")
SETTINGS: dict[str, dict[str, Setting]] = {
    "float": {
        "low": NUMBER,
        "high": NUMBER,
        "log": LOG,
        "step": Setting(False, lambda v: is_number(v) and v > 0, "a positive number"),
    },
    "int": {
        "low": INTEGER,
        "high": INTEGER,
        "log": LOG,
        "step": Setting(False, lambda v: is_integer(v) and v > 0, "a positive integer"),
    },
    "categorical": {
        "choices": Setting(True, is_choice_list, "a non-empty list of numbers, strings, bools or nulls"),
    },
}


MISSING = object()  # what the train config holds at a key it lacks


@dataclass(frozen=True)
class TrainKey:
    """What the train config holds at a parameter's key: its value, and its presets when it is a group."""

    value: Any
    presets: list[str] | None

    @property
    def absent(self) -> bool:
        return self.value is MISSING and self.presets is None

    @property
    def is_node(self) -> bool:
        return self.presets is not None or isinstance(self.value, (DictConfig, ListConfig))

    def unknown_presets(self, choices: tuple[Any, ...]) -> list[str]:
        return [str(c) for c in choices if self.presets is not None and str(c) not in self.presets]


NUMERIC, FLOAT, CATEGORICAL = {"float", "int"}, {"float"}, {"categorical"}
Rule = tuple[set[str], Callable[[SearchParam, TrainKey], Any], Callable[[SearchParam, TrainKey], str]]
# In order; each message follows "params.<key>".
RULES: tuple[Rule, ...] = (
    (
        set(SETTINGS),
        lambda p, t: t.absent,
        lambda p, t: f": {p.key} is not a key of the train config (conf/train.yaml)",
    ),
    (
        NUMERIC,
        lambda p, t: t.is_node,
        lambda p, t: (
            f": {p.key} is a config node, not a number: sample one of its values "
            f"({p.key}.<name>), or presets with type: categorical"
        ),
    ),
    (NUMERIC, lambda p, t: p.low >= p.high, lambda p, t: f": low={p.low} must be below high={p.high}"),
    (NUMERIC, lambda p, t: p.log and p.low <= 0, lambda p, t: f": log: true needs low > 0 (got low={p.low})"),
    (
        NUMERIC,
        lambda p, t: p.log and p.step is not None and (p.type == "float" or p.step != 1),
        lambda p, t: ": log: true and a step cannot be combined (Optuna samples one or the other)",
    ),
    (
        FLOAT,
        lambda p, t: is_integer(t.value),
        lambda p, t: f": {p.key} is an integer ({t.value}) in the train config: use type: int or categorical",
    ),
    (
        CATEGORICAL,
        lambda p, t: t.unknown_presets(p.choices),
        lambda p, t: (
            f".choices: {', '.join(t.unknown_presets(p.choices))} not in conf/{p.key}/ "
            f"({', '.join(t.presets or [])})"
        ),
    ),
)


def parse_search_space(params: DictConfig | None, train_cfg: DictConfig) -> list[SearchParam]:
    """Every ``params`` entry, checked against the composed train config."""
    if not params:
        raise ConfigError(
            "params",
            "the search space is empty: choose one with hparams_search=<name> "
            f"(conf/hparams_search/: {', '.join(group_presets('hparams_search') or [])})",
        )
    return [parse_param(str(key), spec, train_cfg) for key, spec in params.items()]


def parse_param(key: str, spec: Any, train_cfg: DictConfig) -> SearchParam:
    """One ``params`` entry: its type, each setting by ``SETTINGS``, then ``RULES`` in order."""
    name = f"params.{key}"
    if not isinstance(spec, DictConfig) or "type" not in spec:
        raise ConfigError(name, f"{name} must be a mapping with a type: {' | '.join(SETTINGS)}")
    settings = OmegaConf.to_container(spec, resolve=True)
    kind = settings.pop("type")
    if not isinstance(kind, str) or kind not in SETTINGS:
        raise ConfigError(name, f"{name}.type={kind!r} is not one of {', '.join(SETTINGS)}")
    known = SETTINGS[kind]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(
            name,
            f"{name}: {', '.join(unknown)} is not a setting of a {kind} parameter "
            f"(settings: {', '.join(sorted({'type', *known}))})",
        )
    for field, setting in known.items():
        value = settings.get(field)
        if value is None and not setting.required:
            settings.pop(field, None)
        elif not setting.accepts(value):
            raise ConfigError(name, f"{name}.{field} must be {setting.must_be}")
    if "choices" in settings:
        settings["choices"] = tuple(settings["choices"])
    param = SearchParam(key, kind, **settings)
    target = TrainKey(OmegaConf.select(train_cfg, key, default=MISSING), group_presets(key))
    for kinds, breaks, message in RULES:
        if kind in kinds and breaks(param, target):
            raise ConfigError(name, name + message(param, target))
    return param
