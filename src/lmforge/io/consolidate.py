"""One file from a distributed (strategy=fsdp) checkpoint folder, for single-process use.

    lmforge consolidate logs/pretrain/runs/<run>/checkpoints/last.ckpt --out model.safetensors
    lmforge consolidate logs/pretrain/runs/<run>/checkpoints/last.ckpt --out model.ckpt

``.safetensors``: the task's weights (backbone and heads), with the run's hyper-parameters as JSON in
the file's metadata (``hyper_parameters``). ``.ckpt``: a Lightning checkpoint like the one a
single-process run writes, without the optimizer state: ``generate.py``, ``eval.py`` and
``model.init_from`` read it. The folder itself is read by those too, and resumes a run with
``ckpt_path=<folder>`` under strategy=fsdp (optimizer state included).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import is_distributed_checkpoint, read_distributed_checkpoint

FORMATS = (".safetensors", ".ckpt")


def consolidate(folder: str | Path, out: str | Path) -> Path:
    """Gather the shards of ``folder`` into ``out`` (its suffix picks the format); returns ``out``."""
    folder, out = Path(folder), Path(out)
    if not is_distributed_checkpoint(folder):
        raise ConfigError(None, f"{folder} is not a distributed checkpoint folder (it holds no meta.pt)")
    if out.suffix not in FORMATS:
        raise ConfigError(None, f"--out {out} must end in {' or '.join(FORMATS)}")
    checkpoint = read_distributed_checkpoint(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".ckpt":
        torch.save(checkpoint, out)
        return out
    # safetensors stores no shared or strided storage: tied weights become two plain copies
    weights = {
        name: tensor.detach().contiguous().clone() for name, tensor in checkpoint["state_dict"].items()
    }
    metadata = {"hyper_parameters": json.dumps(checkpoint.get("hyper_parameters", {}), default=str)}
    save_file(weights, str(out), metadata=metadata)
    return out
