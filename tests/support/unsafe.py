"""Files that would run code if unpickled: what a malicious checkpoint or ``pytorch_model.bin`` carries."""

from __future__ import annotations

import os
from pathlib import Path

import torch


class RunsCode:
    """Unpickling this calls ``os.system`` to touch ``marker``: whether it ran shows on disk."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def unsafe_checkpoint(path: Path, marker: Path, **content) -> Path:
    """A checkpoint of ours in form (``content`` and a state dict) that also holds a ``RunsCode``."""
    torch.save({"state_dict": {"w": torch.zeros(2)}, **content, "payload": RunsCode(marker)}, path)
    return path
