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


def checkpoint_name(metric: str) -> str:
    """The best checkpoint's file name for ``optimized_metric``: ``step000800-val_acc0.8125``."""
    return f"step{{step:06d}}-{metric.replace('/', '_')}{{{metric}:.4f}}"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("lmforge.root", project_root, replace=True)
    OmegaConf.register_new_resolver("lmforge.checkpoint_name", checkpoint_name, replace=True)
