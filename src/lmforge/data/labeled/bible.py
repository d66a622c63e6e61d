"""Bible paraphrase: is the World English Bible text a rendering of this King James verse?

Both Bibles are SWORD modules from Debian (``sword-text-kjv``, ``sword-text-web``), the ones the
``debian_docs`` corpus reads. Each reference present in both gives one pair (KJV verse, WEB verse):
for a seeded half of them the WEB verse of the same reference (label ``1``), for the other half the
WEB verse most similar to the KJV verse by TF-IDF among other references of the same book (label ``0``),
so a negative shares words with its KJV verse and is not told apart by the topic alone. A negative
that finds no other verse (a book of one verse) stays a positive. ``negatives_from: bible`` draws the
negatives from the whole Bible instead; the same book keeps every text of a book in its own split,
as examples are grouped by book. The pairs are cached under ``cache_dir``, keyed by the module files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.cache import atomic_directory, fingerprint
from lmforge.data.corpus.debian import BIBLE_MODULES, SWORD
from lmforge.data.corpus.debian_formats.sword import SwordBible, osis_text
from lmforge.data.labeled.examples import LabeledExample
from lmforge.data.labeled.source import LabeledSource, file_stats
from lmforge.data.labeled.tfidf import TfidfIndex
from lmforge.data.progress import track
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

FETCH = "run `make data-finetune` (it unpacks sword-text-kjv and sword-text-web into data/debian)"
NEGATIVES_FROM = ("book", "bible")
FORMAT_VERSION = 1  # of the cached pairs: bump when the pairing changes
_PAIRING_SEED = 0  # which references become negatives: fixed, never the run's seed

Reference = tuple[str, int, int]  # (OSIS book, chapter, verse)


class SwordVerses(SwordBible):
    """A SWORD Bible read verse by verse."""

    def chapter_verses(self, book: str, chapter: int) -> list[str]:
        """The plain text of every verse of a chapter, verse 1 first ('' for a verse the module lacks)."""
        # _bible: the pysword module SwordBible opened; zText yields one text per verse index, '' if absent
        return [
            osis_text(osis) for osis in self._bible.get_iter(books=[book], chapters=[chapter], clean=False)
        ]


def read_verses(sword: Path, part: str) -> dict[Reference, str]:
    """The non-empty verses of the ``kjv`` or ``web`` module under ``sword``, in canonical order."""
    bible = SwordVerses(sword, BIBLE_MODULES[part], part)
    chapters = bible.chapters()
    verses = {}
    for book, chapter in track(chapters, f"reading the {part} Bible", total=len(chapters), unit="chapters"):
        for number, text in enumerate(bible.chapter_verses(book, chapter), start=1):
            if text:
                verses[book, chapter, number] = text
    return verses


def pair_verses(
    kjv: dict[Reference, str], web: dict[Reference, str], negatives_from: str = "book"
) -> list[LabeledExample]:
    """One pair per reference of both Bibles: its own WEB verse (1) or the most similar other one (0)."""
    references = [reference for reference in kjv if reference in web]
    web_texts = [web[reference] for reference in references]
    negative = np.zeros(len(references), dtype=bool)
    negative[np.random.default_rng(_PAIRING_SEED).permutation(len(references))[: len(references) // 2]] = True
    queries = np.flatnonzero(negative)
    first_of_text: dict[str, int] = {}
    text_keys = np.array([first_of_text.setdefault(text, i) for i, text in enumerate(web_texts)])
    book_numbers: dict[str, int] = {}
    book_keys = np.array([book_numbers.setdefault(book, len(book_numbers)) for book, _, _ in references])
    log.info("finding the most similar other verse of %d KJV verses by TF-IDF", len(queries))
    partners = TfidfIndex(web_texts).nearest(
        [kjv[references[i]] for i in queries],
        differ=(text_keys, text_keys[queries]),  # neither its own verse nor a verse of the same text
        agree=(book_keys, book_keys[queries]) if negatives_from == "book" else None,
    )
    partner = np.arange(len(references))
    partner[queries] = np.where(partners >= 0, partners, queries)
    return [
        LabeledExample(
            text=kjv[reference],
            text_pair=web_texts[partner[i]],
            label="1" if partner[i] == i else "0",
            group=reference[0],
        )
        for i, reference in enumerate(references)
    ]


class BibleParaphraseSource(LabeledSource):
    """KJV / WEB sentence pairs, grouped by book (about 31,000, half of them paraphrases)."""

    name = "bible_paraphrase"

    def __init__(
        self, root: str = "data/debian", cache_dir: str | None = None, negatives_from: str = "book"
    ) -> None:
        self.root = Path(root).expanduser()
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.negatives_from = negatives_from

    def module_paths(self) -> list[Path]:
        sword = self.root / SWORD
        return [
            path
            for module in BIBLE_MODULES.values()
            for path in (sword / "mods.d" / f"{module}.conf", sword / "modules/texts/ztext" / module)
        ]

    def check(self) -> None:
        if self.negatives_from not in NEGATIVES_FROM:
            raise ConfigError(
                "data.source.negatives_from",
                f"data.source.negatives_from={self.negatives_from!r} is not one of "
                f"{', '.join(NEGATIVES_FROM)}",
            )
        for path in self.module_paths():
            if not path.exists():
                raise ConfigError("data.source.root", f"{path} is missing: {FETCH}")
        if importlib.util.find_spec("pysword") is None:
            raise ConfigError(
                "data.source", "the bible_paraphrase set needs the pysword package: run `make data-finetune`"
            )

    def settings(self) -> dict[str, Any]:
        files = [
            file_stats(file)
            for path in self.module_paths()
            for file in (sorted(path.rglob("*")) if path.is_dir() else [path])
            if file.is_file()
        ]
        return {
            "source": self.name,
            "files": files,
            "negatives_from": self.negatives_from,
            "format": FORMAT_VERSION,
        }

    def read(self) -> list[LabeledExample]:
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / f"{self.name}-{fingerprint(self.settings())}" / "pairs.jsonl"
            if cached.is_file():
                log.info("reusing the cached Bible pairs at %s", cached.parent)
                with cached.open(encoding="utf-8") as lines:
                    return [LabeledExample(**json.loads(line)) for line in lines]
        sword = self.root / SWORD
        pairs = pair_verses(read_verses(sword, "kjv"), read_verses(sword, "web"), self.negatives_from)
        if cached is not None:
            with atomic_directory(cached.parent) as scratch:
                lines = (json.dumps(dataclasses.asdict(pair), ensure_ascii=False) + "\n" for pair in pairs)
                (scratch / cached.name).write_text("".join(lines), encoding="utf-8")
            log.info("saved %d Bible pairs to %s", len(pairs), cached.parent)
        return pairs
