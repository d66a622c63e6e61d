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
from torch import nn

from lmforge.io.hf import family_for_config
from lmforge.io.hf.mapping import export_state
from lmforge.run.config import register_resolvers

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


def verdict(ratio: float, target: float) -> str:
    """A ratio against its target, for a section's summary lines."""
    met = "met" if ratio >= target else f"missed by {target / ratio:.2f}x"
    return f"**{ratio:.2f}x** (target {target}x: {met})"


def hf_twin(
    reference: type[nn.Module], config: Any, state: dict[str, Any], heads: set[str], **settings: Any
) -> nn.Module:
    """A ``transformers`` model of class ``reference`` holding our weights ``state`` (keys of our
    checkpoints: ``backbone.``, heads), its config made by ``lmforge.io.hf`` from our ``config`` and the
    ``heads`` it carries, with ``settings`` on top; SDPA attention. Refuses weights that do not line up."""
    family = family_for_config(config)
    hf_config = {**family.config_to_hf(config, heads), **settings}
    hf_config.pop("model_type")
    twin = reference._from_config(reference.config_class(**hf_config), attn_implementation="sdpa")
    missing, unexpected = twin.load_state_dict(export_state(family, config, state, True), strict=False)
    if unexpected or set(missing) - set(family.tied(config)):
        raise RuntimeError(f"weights do not line up: missing {missing}, unexpected {unexpected}")
    return twin
