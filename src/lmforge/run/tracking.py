"""Weights & Biases: a logger that goes offline by itself without an API key, and what a run records.

``wandb_logger`` builds Lightning's ``WandbLogger`` from ``conf/logger/wandb.yaml``. ``record_run``
adds to every W&B run the resolved config (secrets removed), the parameter counts, the git commit
with a dirty flag, and the tokenizer file.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from lmforge.run.config import CHECKOUT

log = logging.getLogger(__name__)

# Key names that hold secrets: api_key, hf_token, access_token, client_secret, password ... but not
# settings that merely mention tokens (tokenizer, max_new_tokens, shard_tokens).
_SECRET = re.compile(r"(api[_-]?key|secret([_-]?key)?|password|passwd|(^|[_-])token)$", re.IGNORECASE)


def has_wandb_key() -> bool:
    """An API key in the environment or in ~/.netrc (where ``wandb login`` writes it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(
    project: str,
    save_dir: str,
    offline: bool | str = "auto",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
) -> WandbLogger:
    """``offline='auto'``: online with an API key, else offline (``wandb sync`` later), said in one line."""
    if offline == "auto":
        offline = not has_wandb_key()
        if offline:
            log.info(
                "W&B: no API key found, logging offline to %s/wandb (upload later with `wandb sync`)",
                save_dir,
            )
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        offline=bool(offline),
        entity=entity,
        group=group,
        tags=list(tags or []),
        name=name,
        log_model=False,
    )


def without_secrets(value: Any) -> Any:
    """A copy of a nested config with every key that names a secret (api_key, token, ...) dropped."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not _SECRET.search(str(k))}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def git_state(root: Path) -> dict[str, Any]:
    """The commit of the checkout and whether it has uncommitted changes (empty outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "dirty": bool(status.strip())}


def record_run(loggers: list[Any], cfg: DictConfig, backbone: Any, tokenizer_file: Path) -> None:
    """Give each W&B logger the run's config, sizes, code version and tokenizer."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        run = logger.experiment
        run.config.update(
            {
                **without_secrets(OmegaConf.to_container(cfg, resolve=True)),
                "parameters": {
                    "total": backbone.num_parameters(),
                    "trainable": backbone.num_parameters(trainable_only=True),
                },
                "git": git_state(CHECKOUT),
            },
            allow_val_change=True,
        )
        run.save(str(tokenizer_file), base_path=str(tokenizer_file.parent), policy="now")


def finish_runs(loggers: list[Any]) -> None:
    """Close W&B runs, so each job of a multirun gets its own and offline files are complete."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
