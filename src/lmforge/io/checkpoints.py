"""Reading our checkpoints back: the task module, its tokenizer and the run's settings.

A checkpoint of ours is self-contained: the task's hyper-parameters rebuild the module, the
DataModule's state holds the tokenizer (and for fine-tuning the label map), and ``config`` holds the
run's resolved settings. With a tuning method that froze a pretrained backbone it holds only the
trained tensors; the rest is read again from ``model.init_from`` while the module is rebuilt.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from lmforge.errors import ConfigError
from lmforge.io.tokenizers import without_padding_and_truncation

# What Lightning's ModelParallelStrategy (strategy=fsdp) writes beside the shards of a checkpoint folder.
DISTRIBUTED_METADATA = "meta.pt"


def is_distributed_checkpoint(path: str | Path) -> bool:
    """A folder of shards (strategy=fsdp) rather than one file."""
    return (Path(path) / DISTRIBUTED_METADATA).is_file()


def read_checkpoint(path: str | Path, key: str = "ckpt_path", weights: bool = True) -> dict[str, Any]:
    """A checkpoint file, or a distributed checkpoint folder gathered into one dict on the CPU (its
    optimizer state left out); ``weights=False`` skips a folder's shards (the tokenizer, settings)."""
    path = Path(path)
    if is_distributed_checkpoint(path):
        return read_distributed_checkpoint(path, weights)
    if not path.is_file():
        raise ConfigError(
            key,
            f"{key}={path} is not a file: give a checkpoint (.ckpt) or a distributed checkpoint's folder",
        )
    try:
        return torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as error:  # objects beyond tensors and plain data: never unpickled
        found = next((line for line in str(error).splitlines() if "GLOBAL" in line), "objects of other types")
        raise ConfigError(
            key,
            f"cannot read {path} as a checkpoint: it holds more than tensors and plain data "
            f"({found.strip()}), and lmforge only loads checkpoints that cannot run code "
            "(torch.load(weights_only=True))",
        ) from None
    except Exception as error:  # a truncated or foreign file: say which and why
        raise ConfigError(key, f"cannot read {path} as a checkpoint: {error}") from error


def read_distributed_checkpoint(path: Path, weights: bool = True) -> dict[str, Any]:
    """Lightning's metadata plus the full ``state_dict`` gathered from the shards, in one process."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    checkpoint = torch.load(path / DISTRIBUTED_METADATA, map_location="cpu", weights_only=True)
    if weights:
        with tempfile.TemporaryDirectory() as folder:
            whole = Path(folder) / "whole.pt"
            dcp_to_torch_save(path, whole)
            checkpoint["state_dict"] = torch.load(whole, map_location="cpu", weights_only=True)["state_dict"]
    return checkpoint


def checkpoint_tokenizer(checkpoint: dict[str, Any], source: str = "the checkpoint") -> Tokenizer | None:
    """The tokenizer a DataModule stored in the checkpoint (its state sits under its class name), with
    its own padding and truncation switched off (a checkpoint written before they were may hold them)."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("tokenizer"), str):
            return without_padding_and_truncation(Tokenizer.from_str(value["tokenizer"]), source)
    return None
