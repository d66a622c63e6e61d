"""What the benchmarks that feed ``bench/RESULTS.md`` share: presets, the section files, the command.

Each such script writes one markdown section to ``bench/results/<name>.md`` (its figures and the
exact command that made them); ``bench/report.py`` puts the sections together under a header that
names the machine.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lmforge.resolvers import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def model_settings(preset: str, **overrides: Any) -> dict[str, Any]:
    """The ``model`` group of ``conf/model/<preset>.yaml`` as a plain dict, with ``overrides`` applied."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={preset}"])
    return {**OmegaConf.to_container(cfg.model, resolve=True), **overrides}


def command() -> str:
    """How this script was run, as a line to paste: the thread setting, then the script and its arguments."""
    threads = os.environ.get("OMP_NUM_THREADS")
    script = Path(sys.argv[0]).resolve().relative_to(ROOT)
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return prefix + shlex.join(["python", str(script), *sys.argv[1:]])


def write_section(name: str, markdown: str) -> Path:
    """Save one section of the report (``bench/results/<name>.md``) and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    print(markdown)
    return path
