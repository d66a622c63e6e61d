"""The user's own text: ``.txt`` files and ``.jsonl`` files, named by paths or glob patterns."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmforge.data.corpus.base import Corpus, Document
from lmforge.data.progress import track
from lmforge.data.text import document_sentences
from lmforge.errors import ConfigError

SUFFIXES = (".txt", ".jsonl")
TXT_DOCUMENTS = ("blank_line", "file")
TXT_SENTENCES = ("split", "line")
_BLANK_LINE = re.compile(r"\n\s*\n")


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            "data.corpus.paths",
            f"{path} is not UTF-8 (byte {err.start}, line {line}): convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name}`",
        ) from err


class TextFilesCorpus(Corpus):
    """Documents from files.

    ``.txt``: one document per block of lines separated by a blank line, or one per file with
    ``txt_documents: file``; sentences are found by the splitter, or with ``txt_sentences: line`` each
    line is one sentence (the BERT pretraining format, which the prepare scripts write). ``.jsonl``: one
    JSON object per line, its text under ``text_key``; blank lines inside the text separate paragraphs.
    """

    name = "text_files"

    def __init__(
        self,
        paths: str | list[str],
        text_key: str = "text",
        txt_documents: str = "blank_line",
        txt_sentences: str = "split",
        max_documents: int | None = None,
    ) -> None:
        self.patterns = [paths] if isinstance(paths, str) else list(paths)
        self.text_key = text_key
        self.txt_documents = txt_documents
        self.txt_sentences = txt_sentences
        self.max_documents = max_documents

    def files(self) -> list[Path]:
        found: list[Path] = []
        for pattern in self.patterns:
            matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
            files = [Path(match) for match in matches if Path(match).is_file()]
            if not files:
                raise ConfigError(
                    "data.corpus.paths",
                    f"data.corpus.paths: {pattern!r} matches no file (relative paths start at {Path.cwd()})",
                )
            found.extend(files)
        return list(dict.fromkeys(found))

    def check(self) -> None:
        if not self.patterns:
            raise ConfigError("data.corpus.paths", "data.corpus.paths is empty: give files or glob patterns")
        for key, value, choices in (
            ("txt_documents", self.txt_documents, TXT_DOCUMENTS),
            ("txt_sentences", self.txt_sentences, TXT_SENTENCES),
        ):
            if value not in choices:
                raise ConfigError(
                    f"data.corpus.{key}", f"data.corpus.{key}={value!r} is not one of {', '.join(choices)}"
                )
        for path in self.files():
            if path.suffix not in SUFFIXES:
                raise ConfigError(
                    "data.corpus.paths",
                    f"{path} is neither .txt nor .jsonl: rename it or convert it to one of those formats",
                )
            if path.stat().st_size == 0:
                raise ConfigError("data.corpus.paths", f"{path} is empty: remove it from data.corpus.paths")

    def settings(self) -> dict[str, Any]:
        stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in self.files()]
        return {
            "corpus": self.name,
            "files": stats,
            "text_key": self.text_key,
            "txt_documents": self.txt_documents,
            "txt_sentences": self.txt_sentences,
            "max_documents": self.max_documents,
        }

    def _jsonl_documents(self, path: Path) -> Iterator[Document]:
        for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(
                    "data.corpus.paths", f"{path}:{number} is not valid JSON ({err.msg})"
                ) from err
            if not isinstance(record, dict) or self.text_key not in record:
                keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise ConfigError(
                    "data.corpus.text_key",
                    f"{path}:{number} has no {self.text_key!r} field (found: {keys}): "
                    f"set data.corpus.text_key to the field holding the text",
                )
            yield document_sentences(str(record[self.text_key]))

    def _txt_documents(self, path: Path) -> Iterator[Document]:
        text = _read_utf8(path)
        for block in [text] if self.txt_documents == "file" else _BLANK_LINE.split(text):
            if self.txt_sentences == "line":
                document = [line.strip() for line in block.split("\n") if line.strip()]
            else:
                document = document_sentences(block)
            if document:
                yield document

    def all_documents(self) -> Iterator[Document]:
        files = self.files()
        for path in track(files, "reading text files", total=len(files), unit="files"):
            reader = self._jsonl_documents if path.suffix == ".jsonl" else self._txt_documents
            yield from reader(path)
