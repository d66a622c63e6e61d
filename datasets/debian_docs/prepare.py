"""Prepare four parts of the ``debian_docs`` corpus from the Debian packages that
``scripts/fetch_debian.sh`` unpacked (``make data-debian`` runs both); the Bibles ``kjv`` and ``web``
come from ``datasets/bible/prepare.py``.

Writes ``OUT/<part>.txt``, one sentence per line and a blank line after each document:
``linux_doc`` (the Linux kernel's documentation, one document per file), ``python_doc`` (the reST
sources of Python's documentation, one per file), ``gcide`` (a dictionary built on Webster's 1913, one
per entry) and ``austen`` (Jane Austen's six novels, one per chapter). A part already written is kept.

    python datasets/debian_docs/prepare.py [--debian data/debian] [--out data/debian/text] [--parts P ...]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/: the shared formats package

from formats import PrepareError
from formats.dictd import entry_sentences, read_entries, read_index
from formats.prepared import is_prepared, run, write_documents
from formats.rest import rest_sentences
from formats.rlazyload import chapter_documents, read_character_vectors

from lmforge.data.corpus.base import Document
from lmforge.data.progress import track

LINUX_DOC = Path("usr/share/doc/linux-doc-6.1/Documentation")
LINUX_DOC_SKIPPED = ("translations", "devicetree")  # not English; hardware bindings in YAML
PYTHON_DOC = Path("usr/share/doc/python3.11/html/_sources")
GCIDE = Path("usr/share/dictd")
AUSTEN = Path("usr/lib/R/site-library/janeaustenr/data")
# Each part: the Debian package that holds it and what must exist under the unpacked root.
PARTS = {
    "linux_doc": ("linux-doc-6.1", (LINUX_DOC,)),
    "python_doc": ("python3.11-doc", (PYTHON_DOC,)),
    "gcide": ("dict-gcide", (GCIDE / "gcide.dict.dz", GCIDE / "gcide.index")),
    "austen": ("r-cran-janeaustenr", (AUSTEN / "Rdata.rdx", AUSTEN / "Rdata.rdb")),
}


def _read_text(path: Path) -> str:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode("utf-8", errors="replace")


def documentation_files(debian: Path, part: str) -> list[Path]:
    """The files of ``linux_doc`` or ``python_doc``, in reading order."""
    if part == "python_doc":
        return sorted((debian / PYTHON_DOC).rglob("*.rst.txt"))
    base = debian / LINUX_DOC
    return sorted(
        path
        for path in base.rglob("*.gz")
        if path.name.endswith((".rst.gz", ".txt.gz"))
        and path.relative_to(base).parts[0] not in LINUX_DOC_SKIPPED
    )


def _documentation(debian: Path, part: str) -> Iterator[Document]:
    files = documentation_files(debian, part)
    for path in track(files, f"reading {part}", total=len(files), unit="files"):
        yield rest_sentences(_read_text(path))


def _gcide(debian: Path) -> Iterator[Document]:
    spans = read_index(debian / GCIDE / "gcide.index")
    entries = read_entries(debian / GCIDE / "gcide.dict.dz", spans)
    for entry in track(entries, "reading gcide", total=len(spans), unit="entries"):
        yield entry_sentences(entry)


def _austen(debian: Path) -> Iterator[Document]:
    novels = read_character_vectors(debian / AUSTEN / "Rdata.rdx", debian / AUSTEN / "Rdata.rdb")
    for name in track(novels, "reading austen", total=len(novels), unit="novels"):
        yield from chapter_documents(novels[name])


def part_documents(debian: Path, part: str) -> Iterator[Document]:
    """The documents of one part, in a fixed order (empty ones included: the writer leaves them out)."""
    package, paths = PARTS[part]
    for path in paths:
        if not (debian / path).exists():
            raise PrepareError(
                f"{debian / path} is missing (Debian package {package}): "
                f"run `bash scripts/fetch_debian.sh {debian}` (make data-debian does)"
            )
    if part == "gcide":
        return _gcide(debian)
    if part == "austen":
        return _austen(debian)
    return _documentation(debian, part)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debian", type=Path, default=Path("data/debian"), help="the unpacked packages")
    parser.add_argument("--out", type=Path, default=Path("data/debian/text"), help="where <part>.txt go")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to write")
    args = parser.parse_args(argv)
    for part in args.parts:
        path = args.out / f"{part}.txt"
        if not is_prepared(path):
            write_documents(part_documents(args.debian, part), path)


if __name__ == "__main__":
    sys.exit(run(main))
