"""A labeled set a prepare script wrote (``datasets/<name>/prepare.py``) as fixed splits.

The files are ``root/<name>/{train,val,test}.jsonl`` with the fields ``text``, ``label`` (and
``text_pair``, ``group``). A set prepared in variants (TREC's coarse and fine labels) keeps each in a
folder ``<option>=<value>``, chosen by the option's key (``data.source.granularity=fine``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.data.labeled.files import JsonlSource
from lmforge.errors import ConfigError


def option_folder(option: str, value: Any) -> str:
    """The folder of one variant, with booleans spelt as in YAML: ``lemma=false``."""
    return f"{option}={str(value).lower() if isinstance(value, bool) else value}"


class PreparedSetSource(JsonlSource):
    """The train / val / test files of a prepared set: used as they are (no split is drawn)."""

    def __init__(
        self,
        root: str,
        name: str,
        prepared_by: str,
        text_pair_column: str | None = None,
        **options: Any,
    ) -> None:
        self.set_folder = Path(root).expanduser() / name
        self.folder = self.set_folder.joinpath(*(option_folder(*item) for item in sorted(options.items())))
        self.name = name
        self.prepared_by = prepared_by
        self.options = options
        splits = {f"{split}_path": str(self.folder / f"{split}.jsonl") for split in ("val", "test")}
        super().__init__(str(self.folder / "train.jsonl"), text_pair_column=text_pair_column, **splits)

    def check(self) -> None:
        fix = f"run `{self.prepared_by}` to prepare it"
        if not self.set_folder.is_dir():
            raise ConfigError(
                "data.source.root",
                f"{self.set_folder} is missing (relative paths start at {Path.cwd()}): {fix}",
            )
        for option, value in sorted(self.options.items()):
            choices = sorted(path.name.split("=", 1)[1] for path in self.set_folder.glob(f"{option}=*"))
            chosen = option_folder(option, value).split("=", 1)[1]
            if choices and chosen not in choices:
                raise ConfigError(
                    f"data.source.{option}",
                    f"data.source.{option}={chosen!r} is not one of {', '.join(choices)} (the variants "
                    f"prepared in {self.set_folder})",
                )
        for path in self.paths.values():
            if not path.is_file():
                raise ConfigError("data.source.root", f"{path} is missing: {fix}")
        super().check()
