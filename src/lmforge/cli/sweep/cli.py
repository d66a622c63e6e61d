"""The command line: ``python sweep.py [hparams_search=NAME] [n_trials=N] [study keys] [train overrides]``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from lmforge.cli.runtime import keep_freed_memory
from lmforge.cli.sweep.configs import compose_sweep, exit_on_config_error, one_line
from lmforge.cli.sweep.trial import LOG_FORMAT, run_study
from lmforge.errors import ConfigError

USAGE = """\
usage: python sweep.py [hparams_search=NAME] [n_trials=N] [SWEEP KEY=VALUE ...] [TRAIN OVERRIDES ...]

Runs an Optuna study over train.py's config, or continues it: the same command started again runs
only the trials still missing to reach n_trials. Keys of conf/sweep.yaml (study_name, n_trials,
timeout, storage, direction, metric, sampler.*, pruner.*, params.*) and hparams_search= set the
study; every other argument is a train.py override, e.g.
  python sweep.py hparams_search=lr_warmup n_trials=30 model=bert_mini trainer.max_steps=800
Search spaces: conf/hparams_search/. The study, its trials and its tables: logs/sweeps/<study_name>/.
"""


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


def load_settings(args: Sequence[str]) -> tuple[DictConfig, list[str]]:
    """The study's settings and the train overrides, from a command line that mixes both."""
    choice = [arg for arg in args if arg.split("=", 1)[0].lstrip("+~") == "hparams_search"]
    sweep_keys = {"hparams_search", *compose_sweep(choice).keys()}
    sweep_overrides, train_overrides = split_overrides(args, sweep_keys)
    return compose_sweep(sweep_overrides), train_overrides


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args):
        print(USAGE, end="")
        return
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep logs each trial itself
    exit_on_config_error(lambda: run_study(*load_settings(args)))
