"""The user's own labeled files: CSV / TSV (``data=csv``) and JSON lines (``data=jsonl``).

``path`` is the training file; ``val_path`` and ``test_path``, when given, are used as they are,
otherwise those splits are drawn from ``path`` (by label, or whole groups at a time with
``group_column``). Texts, labels and groups are read from named columns (JSON fields) as strings. Any
fault names the ``data.source.*`` key that fixes it, and a faulty row its line.
"""

from __future__ import annotations

import csv
import io
import json
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmforge.data.labeled.examples import LabeledExample
from lmforge.data.labeled.source import LabeledSource, file_stats
from lmforge.errors import ConfigError

Record = tuple[int, dict[str, Any]]  # (line number, the values of one row by column name)
PATH_KEYS = {"train": "data.source.path", "val": "data.source.val_path", "test": "data.source.test_path"}
# What each column holds, by the key that names it (for error messages).
COLUMN_KEYS = {
    "data.source.text_column": "text",
    "data.source.text_pair_column": "text",
    "data.source.label_column": "label",
    "data.source.group_column": "group",
}


def read_utf8(path: Path, key: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            key,
            f"{path} is not UTF-8 (byte {err.start}, line {line}): convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name}`",
        ) from err


class LabeledFilesSource(LabeledSource):
    """What CSV and JSON lines share: the files, the column names, the checks of every row."""

    def __init__(
        self,
        path: str,
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        group_column: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
    ) -> None:
        self.text_column = text_column
        self.label_column = label_column
        self.text_pair_column = text_pair_column
        self.group_column = group_column
        given = {"train": path, "val": val_path, "test": test_path}
        self.paths = {split: Path(p).expanduser() for split, p in given.items() if p is not None}

    def columns(self) -> dict[str, str]:
        """The columns read, by the key that names them."""
        named = {
            "data.source.text_column": self.text_column,
            "data.source.label_column": self.label_column,
            "data.source.text_pair_column": self.text_pair_column,
            "data.source.group_column": self.group_column,
        }
        return {key: column for key, column in named.items() if column is not None}

    @abstractmethod
    def records(self, path: Path, key: str) -> Iterator[Record]:
        """The rows of one file with their line numbers (``key`` names the file's setting in errors)."""

    def header(self, path: Path, key: str) -> list[str]:
        """The column names of a file (of its first record for JSON lines)."""
        for _, record in self.records(path, key):
            return list(record)
        raise ConfigError(key, f"{path} holds no examples: give one example per row")

    def check(self) -> None:
        for split, path in self.paths.items():
            key = PATH_KEYS[split]
            if not path.is_file():
                raise ConfigError(key, f"{key}={path} does not exist (relative paths start at {Path.cwd()})")
            if path.stat().st_size == 0:
                raise ConfigError(key, f"{path} is empty: give a file with one example per row")
            found = self.header(path, key)
            for column_key, column in self.columns().items():
                if column not in found:
                    raise ConfigError(
                        column_key,
                        f"{path} has no column {column!r} (columns: {', '.join(map(str, found))}): set "
                        f"{column_key} to one of them",
                    )

    def settings(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "files": {split: file_stats(path) for split, path in self.paths.items()},
            "columns": self.columns(),
        }

    def given_splits(self) -> dict[str, Path]:
        return {split: path for split, path in self.paths.items() if split != "train"}

    def describe(self, split: str) -> str:
        return str(self.paths.get(split, self.paths["train"]))  # drawn splits come from the training file

    def read(self) -> list[LabeledExample]:
        return self.read_file("train")

    def read_split(self, split: str) -> list[LabeledExample]:
        return self.read_file(split)

    def read_file(self, split: str) -> list[LabeledExample]:
        path, key = self.paths[split], PATH_KEYS[split]
        examples = [self.example(path, number, record, split) for number, record in self.records(path, key)]
        if not examples:
            raise ConfigError(key, f"{path} holds no examples: give one example per row")
        return examples

    def example(self, path: Path, number: int, record: dict[str, Any], split: str) -> LabeledExample:
        values = {}
        for key, column in self.columns().items():
            if column not in record:  # the file's first row has it (check): this row is malformed
                raise ConfigError(
                    PATH_KEYS[split],
                    f"{path}:{number} has no column {column!r} (its columns: {', '.join(map(str, record))}): "
                    "fix or remove that row",
                )
            value = record[column]
            value = "" if value is None else str(value).strip()
            if not value:
                raise ConfigError(
                    key,
                    f"{path}:{number} has an empty {COLUMN_KEYS[key]} in column {column!r}: fill it in or "
                    "remove the row",
                )
            values[key] = value
        return LabeledExample(
            text=values["data.source.text_column"],
            label=values["data.source.label_column"],
            text_pair=values.get("data.source.text_pair_column"),
            group=values.get("data.source.group_column"),
        )


class CsvSource(LabeledFilesSource):
    """CSV or TSV files with a header row; ``delimiter`` null: a tab for ``.tsv``, else a comma."""

    name = "csv"

    def __init__(self, path: str, delimiter: str | None = None, **columns_and_paths: Any) -> None:
        super().__init__(path, **columns_and_paths)
        self.delimiter = delimiter

    def delimiter_of(self, path: Path) -> str:
        if self.delimiter is not None:
            return self.delimiter
        return "\t" if path.suffix.lower() == ".tsv" else ","

    def check(self) -> None:
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ConfigError(
                "data.source.delimiter",
                f"data.source.delimiter={self.delimiter!r} must be one character (null: a tab for .tsv "
                "files, else a comma)",
            )
        super().check()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "delimiter": self.delimiter}

    def header(self, path: Path, key: str) -> list[str]:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
            return next(csv.reader(file, delimiter=self.delimiter_of(path)), [])

    def records(self, path: Path, key: str) -> Iterator[Record]:
        reader = csv.reader(io.StringIO(read_utf8(path, key), newline=""), delimiter=self.delimiter_of(path))
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if any(cell.strip() for cell in row):  # blank lines are no examples
                cells = row + [""] * (len(header) - len(row))  # a short row: its last cells are empty
                yield reader.line_num, dict(zip(header, cells, strict=False))


def jsonl_records(path: Path, key: str) -> Iterator[Record]:
    """The objects of a JSON lines file with their line numbers, blank lines skipped; a line that is
    not a JSON object is a ``ConfigError`` naming ``key`` (the file's setting), the file and the line."""
    for number, line in enumerate(read_utf8(path, key).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(key, f"{path}:{number} is not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise ConfigError(
                key, f"{path}:{number} is a JSON {type(record).__name__}, not an object with fields"
            )
        yield number, record


class JsonlSource(LabeledFilesSource):
    """JSON lines: one object per line, the columns are its fields."""

    name = "jsonl"

    def records(self, path: Path, key: str) -> Iterator[Record]:
        return jsonl_records(path, key)
