"""Training entry point: ``python train.py [overrides]`` or ``lmforge train [overrides]``.

The Hydra app around ``lmforge.run.train.train``: an unknown preset is refused before Hydra composes,
a bad setting exits with status 2 and one ``error:`` line, a diverged run with status 3, and each job
of a multirun records its failure and lets the sweep go on.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lmforge.cli.errors import exit_on_config_error
from lmforge.cli.runtime import keep_freed_memory
from lmforge.errors import TrainingDiverged, find_config_error
from lmforge.run.config import CONFIG_DIR, register_resolvers
from lmforge.run.results import failed_result, write_result
from lmforge.run.train import train

log = logging.getLogger("lmforge.train")

register_resolvers()
# Lightning 2.6 calls a torch API that torch 2.13 deprecates: nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")

__all__ = ["main", "train"]


def run_job(cfg: DictConfig) -> float | None:
    """One job of a multirun: a failure is logged and recorded in its ``result.json``, and the sweep
    goes on to the next job (Hydra would otherwise stop at the first exception)."""
    started = time.perf_counter()
    try:
        return train(cfg)
    except Exception as error:
        config_error = find_config_error(error)
        shown = config_error if config_error is not None else error
        expected = config_error is not None or isinstance(error, TrainingDiverged)  # one line says it all
        log.error("job failed: %s", shown, exc_info=not expected)
        write_result(
            cfg.paths.output_dir,
            failed_result(shown, cfg.get("optimized_metric") or "", time.perf_counter() - started),
        )
        return None


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def unknown_preset(overrides: Sequence[str], config_dir: Path = Path(CONFIG_DIR)) -> str | None:
    """The one-line error for a ``group=option`` override naming no preset of ``conf/<group>/``, else None.

    Hydra's own message for it spans several lines and ends with a HYDRA_FULL_ERROR hint. Only plain
    overrides of the groups that are folders of ``conf/`` are checked (a comma list of a multirun
    too); ``+group=``, ``~group``, ``group/sub=``, ``null``, sweeps such as ``glob(...)`` and runs
    with another config dir are left to Hydra.
    """
    if any(arg.startswith(("--config-dir", "-cd", "hydra.searchpath")) for arg in overrides):
        return None
    for arg in overrides:
        group, equals, value = arg.partition("=")
        folder = config_dir / group
        if not equals or not group.isidentifier() or group == "hydra" or not folder.is_dir():
            continue
        if not re.fullmatch(r"[\w.-]+(,[\w.-]+)*", value):
            continue
        for option in value.split(","):
            if option != "null" and not (folder / f"{option}.yaml").is_file():
                presets = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
                return f"{group}={option} is not a preset; choose one of {presets} (conf/{group}/)"
    return None


def main() -> float | None:
    """``python train.py [overrides]``: an unknown preset is refused in one line (exit 2) before Hydra
    composes anything; then the Hydra app runs."""
    if (problem := unknown_preset(sys.argv[1:])) is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    keep_freed_memory()
    if is_multirun():
        return run_job(cfg)
    try:
        return exit_on_config_error(lambda: train(cfg))
    except TrainingDiverged as error:  # the settings were valid: status 3, not a config error's 2
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
