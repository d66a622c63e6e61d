"""A corpus a prepare script wrote (``datasets/<name>/prepare.py``): one text file per part."""

from __future__ import annotations

from pathlib import Path

from lmforge.data.corpus.text_files import TextFilesCorpus
from lmforge.errors import ConfigError


class PreparedCorpus(TextFilesCorpus):
    """The parts ``root/<part>.txt`` in the order given: one sentence per line, a blank line after
    each document. ``prepared_by`` is the command that writes them, named when one is missing."""

    def __init__(
        self,
        root: str,
        parts: list[str] | tuple[str, ...],
        prepared_by: str,
        name: str = "prepared",
        max_documents: int | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.parts = tuple(dict.fromkeys(parts))
        self.prepared_by = prepared_by
        self.name = name
        paths = [str(self.root / f"{part}.txt") for part in self.parts]
        super().__init__(paths, txt_sentences="line", max_documents=max_documents)

    def check(self) -> None:
        prepared = sorted(path.stem for path in self.root.glob("*.txt"))
        fix = f"run `{self.prepared_by}` to prepare them"
        if not prepared:
            raise ConfigError(
                "data.corpus.root",
                f"{self.root} holds no prepared text (relative paths start at {Path.cwd()}): {fix}",
            )
        if not self.parts:
            raise ConfigError(
                "data.corpus.parts", f"data.corpus.parts is empty: choose from {', '.join(prepared)}"
            )
        missing = [part for part in self.parts if part not in prepared]
        if missing:
            raise ConfigError(
                "data.corpus.parts",
                f"data.corpus.parts: {self.root} holds no part {missing[0]} (prepared: "
                f"{', '.join(prepared)}): choose from those, or {fix}",
            )
        super().check()
