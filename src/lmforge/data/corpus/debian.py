"""About 50 MB of English sentences from six Debian packages, unpacked by ``make data-debian``.

Parts (``parts:``): ``linux_doc`` (the Linux kernel's documentation, one document per file),
``python_doc`` (the reST sources of Python's documentation, one per file), ``gcide`` (a dictionary
built on Webster's 1913, one document per entry), ``kjv`` and ``web`` (two English Bibles, one per
chapter) and ``austen`` (Jane Austen's six novels, one per chapter). The parsers live in
``debian_formats``, one module per file format.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.data.corpus.base import Corpus, Document
from lmforge.data.corpus.debian_formats import missing_reader
from lmforge.data.corpus.debian_formats.gcide import entry_sentences, read_entries, read_index
from lmforge.data.corpus.debian_formats.rest import rest_sentences
from lmforge.data.corpus.debian_formats.rlazyload import chapter_documents, read_character_vectors
from lmforge.data.corpus.debian_formats.sword import SwordBible
from lmforge.data.progress import track
from lmforge.errors import ConfigError

LINUX_DOC = Path("usr/share/doc/linux-doc-6.1/Documentation")
LINUX_DOC_SKIPPED = ("translations", "devicetree")  # not English; hardware bindings in YAML
PYTHON_DOC = Path("usr/share/doc/python3.11/html/_sources")
GCIDE = Path("usr/share/dictd")
SWORD = Path("usr/share/sword")
AUSTEN = Path("usr/lib/R/site-library/janeaustenr/data")
BIBLE_MODULES = {"kjv": "engKJV2006eb", "web": "engWEB2015eb"}


@dataclass(frozen=True)
class _Part:
    package: str  # the Debian package that holds it
    paths: tuple[Path, ...]  # what must exist under the root
    reader: str | None = None  # the PyPI module that reads its format


def _bible(part: str, package: str) -> _Part:
    module = BIBLE_MODULES[part]
    return _Part(
        package, (SWORD / "mods.d" / f"{module}.conf", SWORD / "modules/texts/ztext" / module), "pysword"
    )


_PARTS = {
    "linux_doc": _Part("linux-doc-6.1", (LINUX_DOC,)),
    "python_doc": _Part("python3.11-doc", (PYTHON_DOC,)),
    "gcide": _Part("dict-gcide", (GCIDE / "gcide.dict.dz", GCIDE / "gcide.index")),
    "kjv": _bible("kjv", "sword-text-kjv"),
    "web": _bible("web", "sword-text-web"),
    "austen": _Part("r-cran-janeaustenr", (AUSTEN / "Rdata.rdx", AUSTEN / "Rdata.rdb"), "rdata"),
}
PARTS = tuple(_PARTS)


def _read_text(path: Path) -> str:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode("utf-8", errors="replace")


class DebianDocsCorpus(Corpus):
    name = "debian_docs"

    def __init__(
        self,
        root: str = "data/debian",
        parts: list[str] | tuple[str, ...] = PARTS,
        max_documents: int | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.parts = tuple(dict.fromkeys(parts))
        self.max_documents = max_documents

    def check(self) -> None:
        if not self.parts:
            raise ConfigError(
                "data.corpus.parts", f"data.corpus.parts is empty: choose from {', '.join(PARTS)}"
            )
        unknown = [part for part in self.parts if part not in _PARTS]
        if unknown:
            raise ConfigError(
                "data.corpus.parts",
                f"data.corpus.parts: no part named {', '.join(unknown)}; choose from {', '.join(PARTS)}",
            )
        if not self.root.is_dir():
            raise ConfigError(
                "data.corpus.root",
                f"{self.root} does not exist (relative paths start at {Path.cwd()}): "
                "run `make data-debian` to fetch and unpack the Debian packages",
            )
        for part in self.parts:
            spec = _PARTS[part]
            for path in spec.paths:
                if not (self.root / path).exists():
                    raise ConfigError(
                        "data.corpus.root",
                        f"{self.root / path} is missing (part {part}, Debian package {spec.package}): "
                        "run `make data-debian`",
                    )
            error = missing_reader(spec.reader, part) if spec.reader else None
            if error is not None:
                raise error

    def source_files(self, part: str) -> list[Path]:
        """The files a part is read from, in reading order."""
        if part == "linux_doc":
            base = self.root / LINUX_DOC
            return sorted(
                path
                for path in base.rglob("*.gz")
                if path.name.endswith((".rst.gz", ".txt.gz"))
                and path.relative_to(base).parts[0] not in LINUX_DOC_SKIPPED
            )
        if part == "python_doc":
            return sorted((self.root / PYTHON_DOC).rglob("*.rst.txt"))
        files: list[Path] = []
        for path in _PARTS[part].paths:
            full = self.root / path
            files.extend(sorted(full.rglob("*")) if full.is_dir() else [full])
        return [path for path in files if path.is_file()]

    def settings(self) -> dict[str, Any]:
        sources = {}
        for part in self.parts:
            files = self.source_files(part) if part in _PARTS else []
            stats = [
                (str(path.relative_to(self.root)), path.stat().st_size, path.stat().st_mtime_ns)
                for path in files
            ]
            sources[part] = {
                "files": len(stats),
                "bytes": sum(size for _, size, _ in stats),
                "stats": hashlib.blake2b(repr(stats).encode(), digest_size=16).hexdigest(),
            }
        return {
            "corpus": self.name,
            "root": str(self.root.resolve()),
            "parts": list(self.parts),
            "sources": sources,
            "max_documents": self.max_documents,
        }

    def _file_documents(self, part: str, description: str) -> Iterator[Document]:
        files = self.source_files(part)
        for path in track(files, description, total=len(files), unit="files"):
            sentences = rest_sentences(_read_text(path))
            if sentences:
                yield sentences

    def _gcide_documents(self) -> Iterator[Document]:
        spans = read_index(self.root / GCIDE / "gcide.index")
        entries = read_entries(self.root / GCIDE / "gcide.dict.dz", spans)
        for entry in track(entries, "reading GCIDE", total=len(spans), unit="entries"):
            sentences = entry_sentences(entry)
            if sentences:
                yield sentences

    def _bible_documents(self, part: str) -> Iterator[Document]:
        bible = SwordBible(self.root / SWORD, BIBLE_MODULES[part], part)
        chapters = bible.chapters()
        for book, chapter in track(
            chapters, f"reading the {part} Bible", total=len(chapters), unit="chapters"
        ):
            sentences = bible.chapter_sentences(book, chapter)
            if sentences:
                yield sentences

    def _austen_documents(self) -> Iterator[Document]:
        novels = read_character_vectors(
            self.root / AUSTEN / "Rdata.rdx", self.root / AUSTEN / "Rdata.rdb", "austen"
        )
        for name in track(novels, "reading Jane Austen", total=len(novels), unit="novels"):
            yield from chapter_documents(novels[name])

    def part_documents(self, part: str) -> Iterator[Document]:
        """The documents of one part, in a fixed order."""
        if part == "linux_doc":
            return self._file_documents(part, "reading linux-doc")
        if part == "python_doc":
            return self._file_documents(part, "reading python-doc")
        if part == "gcide":
            return self._gcide_documents()
        if part == "austen":
            return self._austen_documents()
        return self._bible_documents(part)

    def documents(self) -> Iterator[Document]:
        # chain opens a part only when the one before is used up, so a cap never reads past itself
        documents = itertools.chain.from_iterable(self.part_documents(part) for part in self.parts)
        return itertools.islice(documents, self.max_documents)
