"""What every labeled set offers the DataModule: a cache key, a cheap up-front check, its examples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lmforge.data.labeled.examples import LabeledExample


class LabeledSource(ABC):
    """A labeled set, built from ``data.source`` with Hydra's instantiate."""

    name: str

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that decides the examples read (files' sizes and times, options): a cache key."""

    @abstractmethod
    def check(self) -> None:
        """Fail fast with a ``ConfigError`` when a file is missing (reads no examples)."""

    @abstractmethod
    def read(self) -> list[LabeledExample]:
        """The examples, in a fixed order; the splits not given as files are drawn from them."""

    def given_splits(self) -> dict[str, Path]:
        """``val`` / ``test`` splits that come as files of their own, used as they are."""
        return {}

    def read_split(self, split: str) -> list[LabeledExample]:
        """The examples of a split named by ``given_splits``."""
        raise KeyError(split)

    def describe(self, split: str) -> str:
        """Where a split's examples come from, for error messages."""
        return str(self.given_splits().get(split, f"the {self.name} set"))


def file_stats(path: Path) -> tuple[str, int, int]:
    """A file's identity for cache keys: resolved path, size in bytes, modification time in ns."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns
