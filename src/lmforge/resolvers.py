"""OmegaConf resolvers used by ``conf/``: registered before Hydra composes a config."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> str:
    """The checkout holding ``conf/`` (editable install), else the directory the command runs in."""
    checkout = Path(__file__).resolve().parents[2]
    return str(checkout) if (checkout / "conf").is_dir() else os.getcwd()


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("lmforge.root", project_root, replace=True)
