"""Crash-safe checkpoint files: a save that is killed half-way never replaces the previous file.

Lightning 2.6's ``TorchCheckpointIO`` saves through ``_atomic_save``: it serialises the whole
checkpoint into memory, then writes it in an fsspec transaction, which on a local disk writes a
temporary file in the system's temporary folder (``tempfile.mkstemp``) and ``shutil.move``s it onto
the checkpoint's name. When the temporary folder is on another file system than the run (a tmpfs
``/tmp``, the usual case on clusters) that move is a copy *into the final file*: a process killed
during the copy leaves a truncated ``last.ckpt`` behind, and nothing is ever fsynced, so a machine that
loses power can leave an empty one. It also holds a second, in-memory copy of the checkpoint.

``AtomicCheckpointIO`` writes straight into a temporary file beside the checkpoint (same folder, so
same file system), fsyncs it, ``os.replace``s it onto the final name (atomic on POSIX and Windows)
and fsyncs the folder so the rename itself survives a crash. Whatever moment the process dies, the
checkpoint's name points at the old complete file or at the new complete file; a leftover
``.<name>.tmp-*`` file is all that a killed save leaves, and the next save of that name removes it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves go through a temporary file, fsync and ``os.replace``.

    Remote paths (``s3://``, ``gs://`` ...) keep Lightning's save: object stores already publish a
    file only when its upload completes.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any = None) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"storage_options are not supported by {type(self).__name__} for local files")
        atomic_torch_save(checkpoint, path)


def atomic_torch_save(obj: Any, path: _PATH) -> None:
    """``torch.save(obj, path)`` such that ``path`` is never seen half-written (see the module doc)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # what an earlier killed save left
        with contextlib.suppress(OSError):
            stale.unlink()
    handle, temporary = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_folder(final.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is durable on NTFS
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse to fsync a folder
        pass
    finally:
        os.close(descriptor)


def use_atomic_checkpoints(trainer: pl.Trainer) -> bool:
    """Give the trainer's strategy our checkpoint IO when it saves through Lightning's plain one.

    Only an exact ``TorchCheckpointIO`` is replaced: DeepSpeed writes its own folders, FSDP's
    sharded saves and XLA have their own IO, and a user's plugin (async saves, say) stays as given.
    Returns whether the IO was replaced.
    """
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is not TorchCheckpointIO:
        return False
    strategy.checkpoint_io = AtomicCheckpointIO()
    return True
