"""Where ``conf/`` is, and the OmegaConf resolvers it uses (registered before Hydra composes)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

# The checkout that holds conf/ (lmforge is installed editable from it); absolute, so every entry
# point (python train.py, lmforge train, python -m lmforge) composes the same files.
CHECKOUT = Path(__file__).resolve().parents[3]
CONFIG_DIR = str(CHECKOUT / "conf")


def project_root() -> str:
    """The checkout holding ``conf/`` (editable install), else the directory the command runs in."""
    return str(CHECKOUT) if (CHECKOUT / "conf").is_dir() else os.getcwd()


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("lmforge.root", project_root, replace=True)
