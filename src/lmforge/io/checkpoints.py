"""Reading our checkpoints back: the task module, its tokenizer and the run's settings.

A checkpoint of ours is self-contained: the task's hyper-parameters rebuild the module, the
DataModule's state holds the tokenizer (and for fine-tuning the label map), and ``config`` holds the
run's resolved settings. With a tuning method that froze a pretrained backbone it holds only the
trained tensors; the rest is read again from ``model.init_from`` while the module is rebuilt.
"""

from __future__ import annotations

import pickle
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

import torch
from tokenizers import Tokenizer
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, MetadataIndex

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
        return read_distributed_checkpoint(path, weights, key)
    if not path.is_file():
        raise ConfigError(
            key,
            f"{key}={path} is not a file: give a checkpoint (.ckpt) or a distributed checkpoint's folder",
        )
    return load_data(str(path), path, key, mmap=True)


def load_data(source: str | BinaryIO, path: Path, key: str, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` of ``source`` (the file ``path``, or a part of it): tensors and
    plain data only, else a ``ConfigError`` naming what else it holds."""
    try:
        return torch.load(source, map_location="cpu", mmap=mmap, weights_only=True)
    except pickle.UnpicklingError as error:  # objects beyond tensors and plain data: never unpickled
        found = next((line for line in str(error).splitlines() if "GLOBAL" in line), "objects of other types")
        raise unsafe(path, key, found.strip()) from None
    except Exception as error:  # a truncated or foreign file: say which and why
        raise ConfigError(key, f"cannot read {path} as a checkpoint: {error}") from error


def unsafe(path: Path, key: str, found: str) -> ConfigError:
    return ConfigError(
        key,
        f"cannot read {path} as a checkpoint: it holds more than tensors and plain data ({found}), and "
        "lmforge only loads checkpoints that cannot run code (torch.load(weights_only=True))",
    )


def read_distributed_checkpoint(path: Path, weights: bool = True, key: str = "ckpt_path") -> dict[str, Any]:
    """Lightning's metadata plus the full ``state_dict`` gathered from the shards, in one process."""
    checkpoint = load_data(str(path / DISTRIBUTED_METADATA), path / DISTRIBUTED_METADATA, key)
    check_shards(path, key)
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


# What a distributed checkpoint's index (.metadata) refers to: torch's descriptions of the saved items
SHARD_INDEX_GLOBALS = {
    "torch.distributed.checkpoint.metadata": None,  # any of its dataclasses and enums
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},  # and the dtypes, below
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"},
}


class ShardIndexUnpickler(pickle.Unpickler):
    """Reads a ``.metadata`` file (a plain pickle) admitting only the descriptions torch writes there."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = module in SHARD_INDEX_GLOBALS and (
            SHARD_INDEX_GLOBALS[module] is None
            or name in SHARD_INDEX_GLOBALS[module]
            or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
        )
        if not allowed:
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")
        return super().find_class(module, name)


def check_shards(path: Path, key: str) -> None:
    """What torch reads from a distributed checkpoint's shards beyond tensors must be data only: its
    ``.metadata`` (which torch unpickles in full) and each non-tensor item (which torch loads with
    ``weights_only=False``). Checked before torch reads them, here and when Lightning resumes."""
    for index_file in sorted(path.glob("*.metadata")):
        try:
            with open(index_file, "rb") as stream:
                index = ShardIndexUnpickler(stream).load()
        except pickle.UnpicklingError as error:
            raise unsafe(index_file, key, str(error)) from None
        except Exception as error:
            raise ConfigError(key, f"cannot read {index_file} as a checkpoint index: {error}") from error
        if not isinstance(index, Metadata):
            raise ConfigError(key, f"{index_file} is not the index of a distributed checkpoint")
        for name, item in index.state_dict_metadata.items():
            if not isinstance(item, BytesStorageMetadata):
                continue
            stored = index.storage_data[MetadataIndex(name)]
            with open(path / stored.relative_path, "rb") as shard:
                shard.seek(stored.offset)
                load_data(BytesIO(shard.read(stored.length)), path / stored.relative_path, key)
