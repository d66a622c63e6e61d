"""A tuning method's checkpoint: only its trained tensors, beside the base weights it needs.

``save_method`` writes ``adapter_model.safetensors`` (``trainable_state_dict``: a few MB where the
base holds GB) and ``adapter_config.json`` (the method, its settings and a free ``base`` field that
says which base weights it goes with), the two files HF peft users look for. ``load_method`` loads
them into a model built from the same base with the same method applied.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.tensor import DTensor

from lmforge.errors import ConfigError
from lmforge.peft.base import TuningMethod, trainable_state_dict

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def save_method(
    directory: str | Path,
    module: nn.Module,
    method: TuningMethod,
    base: str | None = None,
    write: bool = True,
) -> Path:
    """Write ``method``'s trained tensors in ``module`` and its settings to ``directory``; ``base``
    names the base weights (a path, a hub name) for whoever loads it. Returns the directory.

    Sharded tensors (strategy=fsdp) are gathered first, which every process must join; only the
    process with ``write`` then writes the files."""
    directory = Path(directory)
    tensors = {
        name: (t.full_tensor() if isinstance(t, DTensor) else t).contiguous()
        for name, t in method.trainable_state_dict(module).items()
    }
    if not write:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / WEIGHTS_FILE, metadata={"method": method.name})
    config = {"method": method.name, "settings": dataclasses.asdict(method.settings), "base": base}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_method_config(directory: str | Path) -> dict[str, Any]:
    """``adapter_config.json``; ``{"method": c["method"], **c["settings"]}`` rebuilds the method with
    ``apply_peft``."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(None, f"{path} does not exist: {directory} holds no method checkpoint")
    return json.loads(path.read_text())


def _listed(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_method(directory: str | Path, module: nn.Module) -> dict[str, Any]:
    """Copy a saved method's tensors into ``module``, which must hold the same method (applied with
    the same settings to the same kind of base): every tensor of its ``trainable_state_dict`` must be
    in the file with its shape, and nothing else. Returns the checkpoint's config."""
    config = read_method_config(directory)
    loaded = load_file(Path(directory) / WEIGHTS_FILE)
    expected = trainable_state_dict(module)
    missing = sorted(expected.keys() - loaded.keys())
    unexpected = sorted(loaded.keys() - expected.keys())
    if missing or unexpected:
        problems = [f"the model's {_listed(missing)} are missing"] if missing else []
        if unexpected:
            problems.append(f"the checkpoint's {_listed(unexpected)} have no place in the model")
        raise ConfigError(
            None,
            f"{directory} holds a peft.method={config['method']} checkpoint that does not fit this model: "
            f"{'; '.join(problems)}. Apply the same method with the same settings "
            f"({config['settings']}) to the same base before loading",
        )
    for name, tensor in expected.items():
        if tensor.shape != loaded[name].shape:
            raise ConfigError(
                None,
                f"{directory}: {name} has shape {tuple(loaded[name].shape)} in the checkpoint and "
                f"{tuple(tensor.shape)} in the model (another base size or method setting?)",
            )
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(loaded[name])
    return config
