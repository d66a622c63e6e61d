"""Jane Austen's novels from R's lazy-load database of ``janeaustenr`` (Debian ``r-cran-janeaustenr``).

``Rdata.rdx`` is a gzipped RDS object, ``list(variables = list(name = c(offset, length)), references,
compressed)``; each slice of ``Rdata.rdb`` is a 4-byte big-endian length and a zlib stream holding
one serialized object. PyPI ``rdata`` parses the RDS streams, so no R is needed. Each novel is a
character vector of lines: one document per chapter, paragraphs at blank lines.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.corpus.base import Document
from lmforge.data.text import paragraphs, split_sentences

from . import PrepareError, import_reader

_CHAPTER_HEADING = re.compile(r"^\s*chapter\s+(?:[ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)
_LENGTH_HEADER = 4  # bytes before each zlib stream in the .rdb


def read_character_vectors(rdx: Path, rdb: Path) -> dict[str, list[str]]:
    """The character vectors stored in a lazy-load database, by name in sorted order."""
    rdata = import_reader("rdata")

    def parse(data: bytes) -> Any:
        return rdata.conversion.convert(rdata.parser.parse_data(data, extension=".rds"))

    index = parse(rdx.read_bytes())
    compression = int(index["compressed"][0])  # TRUE: zlib; 2: bzip2; 3: xz
    if compression != 1:
        raise PrepareError(f"{rdb} uses R compression type {compression}, not zlib, which this reader reads")
    data = rdb.read_bytes()
    vectors: dict[str, list[str]] = {}
    for name, (offset, length) in sorted(index["variables"].items()):
        value = parse(zlib.decompress(data[offset + _LENGTH_HEADER : offset + length]))
        if isinstance(value, np.ndarray) and value.dtype.kind == "U":  # character vectors only
            vectors[str(name)] = [str(line) for line in value]
    return vectors


def chapter_documents(lines: list[str]) -> list[Document]:
    """One document per chapter; the title pages before the first chapter and all-capital lines
    (``VOLUME II``, ``THE END``, letter salutations) are left out, as are the underscores of italics."""
    chapters: list[list[str]] = []
    for line in lines:
        if _CHAPTER_HEADING.match(line):
            chapters.append([])
        elif chapters:
            chapters[-1].append(line)
    documents = []
    for chapter in chapters:
        text = "\n".join(chapter).replace("_", "")
        sentences = [
            sentence
            for paragraph in paragraphs(text)
            if any(char.islower() for char in paragraph)
            for sentence in split_sentences(paragraph)
        ]
        if sentences:
            documents.append(sentences)
    return documents
