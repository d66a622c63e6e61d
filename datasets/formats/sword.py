"""Bibles in SWORD modules (Debian ``sword-text-kjv``, ``sword-text-web``), read with PyPI ``pysword``.

The verses are OSIS XML. pysword's own cleaner drops footnotes without a space, which glues the
words around them (``Godcreated``), so the markup is removed here: footnotes become a space, word
tags vanish, other tags (line and paragraph marks) become a space. A few KJV verses keep a USFM
marker (``\\nd``) and pilcrows; the WEB appends a glossary to its last verse, which is cut off.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from typing import Any

from lmforge.data.corpus.base import Document
from lmforge.data.text import split_sentences

from . import PrepareError, import_reader

_GLOSSARY = re.compile(r"<div\b[^>]*type=\"glossary\"")
_FOOTNOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_WORD_TAG = re.compile(r"</?(?:w|transChange|divineName|q|seg|foreign|name|hi|catchWord|rdg)\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")
_USFM_MARKER = re.compile(r"\\\w+\*?\s?")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?)])")
_LEFTOVER_MARKS = str.maketrans({"¶": " ", "[": " ", "]": " "})  # paragraph marks, variant brackets


def osis_text(osis: str) -> str:
    """The plain text of OSIS markup, footnotes and the trailing glossary left out."""
    text = _GLOSSARY.split(osis, maxsplit=1)[0]
    text = _TAG.sub(" ", _WORD_TAG.sub("", _FOOTNOTE.sub(" ", text)))
    text = html.unescape(_USFM_MARKER.sub("", text)).translate(_LEFTOVER_MARKS)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(text.split()))


class SwordBible:
    """One SWORD module under ``root`` (the folder holding ``mods.d/`` and ``modules/``)."""

    def __init__(self, root: Path, module: str) -> None:
        modules = import_reader("pysword.modules").SwordModules(str(root))
        found = modules.parse_modules() if (root / "mods.d").is_dir() else {}
        if module not in found:
            raise PrepareError(
                f"{root} holds no SWORD module {module} (found: {', '.join(sorted(found)) or 'none'}): "
                "fetch it with `bash scripts/fetch_debian.sh data/debian sword-text-kjv sword-text-web`"
            )
        self._bible: Any = modules.get_bible_from_module(module)
        if hasattr(self._bible, "_decompressed_text"):  # zText inflates a whole book for every verse
            self._bible._decompressed_text = functools.lru_cache(maxsize=2)(self._bible._decompressed_text)

    def chapters(self) -> list[tuple[str, int]]:
        """(OSIS book name, chapter number) of every chapter of the module's versification, in order."""
        books = self._bible.get_structure().get_books()
        return [
            (book.osis_name, chapter)
            for testament in books.values()
            for book in testament
            for chapter in range(1, book.num_chapters + 1)
        ]

    def chapter_sentences(self, book: str, chapter: int) -> Document:
        osis = self._bible.get(books=[book], chapters=[chapter], clean=False, join=" ")
        return split_sentences(osis_text(osis))

    def chapter_verses(self, book: str, chapter: int) -> list[str]:
        """The plain text of every verse of a chapter, verse 1 first ('' for a verse the module lacks)."""
        # zText yields one text per verse index of the versification, '' where the module has none
        return [
            osis_text(osis) for osis in self._bible.get_iter(books=[book], chapters=[chapter], clean=False)
        ]
