"""The two configs a sweep composes, ``conf/sweep.yaml`` and ``conf/train.yaml``, and where it meets train.py.

This is the package's one import point of ``lmforge.run`` (``resolve``, ``train``) and of the exit
policy: the other modules take ``train`` and ``exit_on_config_error`` from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict

from lmforge.cli.errors import exit_on_config_error
from lmforge.errors import ConfigError
from lmforge.run.config import CONFIG_DIR, register_resolvers
from lmforge.run.spec import resolve
from lmforge.run.train import train

register_resolvers()  # conf/ reads ${lmforge.root:}

__all__ = [
    "check_train_config",
    "compose_sweep",
    "compose_train",
    "exit_on_config_error",
    "group_presets",
    "one_line",
    "override_value",
    "set_output_dir",
    "train",
]


def one_line(error: BaseException) -> str:
    """An error's message on one line, without the config search path Hydra appends to it."""
    return " ".join(str(error).split("Config search path:")[0].split())


@contextlib.contextmanager
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield


def group_presets(key: str) -> list[str] | None:
    """The presets of the config group ``key`` (``conf/<key>/*.yaml``), or None when it is no group."""
    folder = Path(CONFIG_DIR, *key.split("."))
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else None


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
    resolve(cfg)
    if cfg.get("plan"):
        raise ConfigError("plan", "plan=true prints a run's costs and trains nothing: run it with train.py")
    devices = cfg.trainer.get("devices", 1)
    if str(devices) != "1":
        raise ConfigError(
            "trainer.devices",
            f"trainer.devices={devices}: a sweep trains each trial on one device (the pruning callback "
            "reports from one process); set trainer.devices=1",
        )
