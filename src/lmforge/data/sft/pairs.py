"""Prompt/response pairs for instruction tuning, read from JSON lines files.

Each line is an object with ``prompt`` and ``response``, or Alpaca's ``instruction``, ``input`` (empty
or absent when the instruction says it all) and ``output``: an Alpaca line's prompt is its instruction,
then a blank line and its input when it has one. Other fields are ignored. ``path`` is the training
file; ``val_path`` and ``test_path``, when given, are used as they are, otherwise those splits are drawn
from ``path`` (``InstructionDataModule``). A fault names the ``data.pairs.*`` key of the file, the file
and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.data.labeled.files import jsonl_records
from lmforge.data.labeled.source import file_stats
from lmforge.errors import ConfigError

PATH_KEYS = {"train": "data.pairs.path", "val": "data.pairs.val_path", "test": "data.pairs.test_path"}
FORMATS = "prompt and response, or Alpaca's instruction, input (optional) and output"


@dataclass(frozen=True)
class InstructionPair:
    """A prompt and the response the model should learn to give."""

    prompt: str
    response: str


def field(record: dict[str, Any], name: str, where: str, key: str, required: bool = True) -> str:
    """The text of field ``name`` of one line, stripped ('' for an absent optional field)."""
    if name not in record:
        if not required:
            return ""
        raise ConfigError(
            key, f"{where} has no field {name!r} (its fields: {', '.join(map(str, record))}): give {FORMATS}"
        )
    value = record[name]
    if value is not None and not isinstance(value, str | int | float):
        raise ConfigError(key, f"{where} field {name!r} is a JSON {type(value).__name__}, not a text")
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ConfigError(key, f"{where} has an empty {name!r}: fill it in or remove the line")
    return text


def pair_of(record: dict[str, Any], where: str, key: str) -> InstructionPair:
    """The pair one JSON line holds, in either format."""
    if "instruction" in record:
        instruction = field(record, "instruction", where, key)
        given = field(record, "input", where, key, required=False)
        prompt = f"{instruction}\n\n{given}" if given else instruction
        return InstructionPair(prompt, field(record, "output", where, key))
    return InstructionPair(field(record, "prompt", where, key), field(record, "response", where, key))


class InstructionFiles:
    """Pairs from JSON lines files (``data.pairs``): the user's, or a set a prepare script wrote.

    ``name`` tells sets apart in the cache and the logs; ``prepared_by`` is the command that writes the
    files of a prepared set (named when they are missing).
    """

    def __init__(
        self,
        path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        name: str = "jsonl",
        prepared_by: str | None = None,
    ) -> None:
        self.name = name
        self.prepared_by = prepared_by
        given = {"train": path, "val": val_path, "test": test_path}
        self.paths = {split: Path(p).expanduser() for split, p in given.items() if p is not None}

    def check(self) -> None:
        """Every file exists and is not empty (reads no pairs)."""
        for split, path in self.paths.items():
            key = PATH_KEYS[split]
            if not path.is_file():
                fix = f"run `{self.prepared_by}` to prepare it" if self.prepared_by else "give a file"
                raise ConfigError(
                    key, f"{key}={path} does not exist (relative paths start at {Path.cwd()}): {fix}"
                )
            if path.stat().st_size == 0:
                raise ConfigError(key, f"{path} is empty: give one JSON object per line ({FORMATS})")

    def settings(self) -> dict[str, Any]:
        """What decides the pairs read (files' sizes and times): a cache key."""
        return {"pairs": self.name, "files": {split: file_stats(path) for split, path in self.paths.items()}}

    def given_splits(self) -> list[str]:
        """The splits that come as files of their own (``val``, ``test``), used as they are."""
        return [split for split in self.paths if split != "train"]

    def describe(self, split: str) -> str:
        return str(self.paths.get(split, self.paths["train"]))  # drawn splits come from the training file

    def read(self, split: str = "train") -> list[InstructionPair]:
        """The pairs of one file, in its order."""
        path, key = self.paths[split], PATH_KEYS[split]
        pairs = [pair_of(record, f"{path}:{number}", key) for number, record in jsonl_records(path, key)]
        if not pairs:
            raise ConfigError(key, f"{path} holds no pairs: give one JSON object per line ({FORMATS})")
        return pairs
