"""The English text of Python's own documentation: no download, always present.

``pydoc_data.topics`` holds the sections of the Language Reference; the standard library's
docstrings are read from its ``.py`` sources with ``ast`` (never by importing the modules). Each
docstring is a document (``document: docstring``), or all of a module's docstrings in source order
make one (``document: module``: longer documents, for longer sequences).
"""

from __future__ import annotations

import ast
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lmforge.data.corpus.base import Corpus, Document
from lmforge.data.progress import track
from lmforge.data.text import rest_prose, split_sentences
from lmforge.errors import ConfigError

_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
DOCUMENT_UNITS = ("module", "docstring")


def _prose_sentences(text: str) -> Document:
    return [sentence for paragraph in rest_prose(text) for sentence in split_sentences(paragraph)]


class StdlibCorpus(Corpus):
    name = "stdlib"

    def __init__(
        self,
        topics: bool = True,
        docstrings: bool = True,
        min_docstring_chars: int = 40,
        exclude_dirs: list[str] | tuple[str, ...] = ("test", "tests", "idlelib", "site-packages"),
        max_documents: int | None = None,
        document: str = "docstring",
        root: str | None = None,
    ) -> None:
        self.topics = topics
        self.docstrings = docstrings
        self.min_docstring_chars = min_docstring_chars
        self.exclude_dirs = tuple(exclude_dirs)
        self.max_documents = max_documents
        self.document = document
        self.root = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])

    def settings(self) -> dict[str, Any]:
        return {
            "corpus": self.name,
            "python": sys.version,
            "root": str(self.root),
            "topics": self.topics,
            "docstrings": self.docstrings,
            "min_docstring_chars": self.min_docstring_chars,
            "exclude_dirs": sorted(self.exclude_dirs),
            "max_documents": self.max_documents,
            "document": self.document,
        }

    def check(self) -> None:
        if self.document not in DOCUMENT_UNITS:
            raise ConfigError(
                "data.corpus.document",
                f"data.corpus.document={self.document!r} is not one of {', '.join(DOCUMENT_UNITS)}",
            )
        if not (self.topics or self.docstrings):
            raise ConfigError(
                "data.corpus.topics",
                "data.corpus.topics and data.corpus.docstrings are both false: the stdlib corpus is empty",
            )
        if self.docstrings and not self.root.is_dir():
            raise ConfigError(
                "data.corpus.docstrings",
                f"the standard library sources are not at {self.root}: set data.corpus.docstrings=false",
            )
        if self.topics:
            try:
                import pydoc_data.topics  # noqa: F401
            except ImportError as err:
                raise ConfigError(
                    "data.corpus.topics",
                    "this Python has no pydoc_data.topics: set data.corpus.topics=false",
                ) from err

    def _source_files(self) -> list[Path]:
        excluded = set(self.exclude_dirs)
        return sorted(
            path
            for path in self.root.rglob("*.py")
            if not excluded.intersection(path.relative_to(self.root).parts[:-1])
        )

    def _docstrings(self, path: Path) -> Iterator[str]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            return  # a few stdlib files are templates or target other versions
        owners = sorted(
            (node for node in ast.walk(tree) if isinstance(node, _DOCSTRING_OWNERS)),
            key=lambda node: getattr(node, "lineno", 0),  # source order (the module comes first)
        )
        for node in owners:
            docstring = ast.get_docstring(node)
            if docstring and len(docstring) >= self.min_docstring_chars:
                yield docstring

    def all_documents(self) -> Iterator[Document]:
        if self.topics:
            from pydoc_data.topics import topics

            for key in sorted(topics):
                yield _prose_sentences(topics[key])
        if self.docstrings:
            files = self._source_files()
            for path in track(files, "reading stdlib docstrings", total=len(files), unit="files"):
                documents = [_prose_sentences(docstring) for docstring in self._docstrings(path)]
                if self.document == "module":
                    documents = [[sentence for document in documents for sentence in document]]
                yield from documents
