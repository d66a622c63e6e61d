"""Prepare the two SWORD Bibles that ``scripts/fetch_debian.sh`` unpacked (Debian ``sword-text-kjv``
and ``sword-text-web``, the King James and World English Bibles).

``text``: the ``kjv`` and ``web`` parts of the ``debian_docs`` corpus, ``OUT/kjv.txt`` and ``OUT/web.txt``,
one document per chapter (``make data-debian``).

``modern``: the ``bible_modern`` instruction-tuning set (``make data-debian``): for each reference in
both Bibles, ``{"prompt": "Say in modern English: <KJV verse>", "response": "<WEB verse>"}``, split by
book, under ``OUT/bible_modern/``.

``pairs``: the ``bible_paraphrase`` set (``make data-finetune``). Each reference present in both Bibles
gives one pair (KJV verse, WEB verse): for a seeded half of them the WEB verse of the same reference
(label ``1``), for the other half the WEB verse most similar to the KJV verse by TF-IDF among the
other references of the same book (``negatives_from=book``) or of the whole Bible
(``negatives_from=bible``), label ``0``; a negative that finds no other verse stays a positive. The
pairs are grouped by book, so a book's verses sit in one split. Both variants are written, under
``OUT/bible_paraphrase/negatives_from=<book|bible>/``. What is already written is kept.

    python datasets/bible/prepare.py text [--debian data/debian] [--out data/debian/text]
    python datasets/bible/prepare.py modern [--debian data/debian] [--out data/sft]
    python datasets/bible/prepare.py pairs [--debian data/debian] [--out data/finetune]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/: the shared formats package
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tfidf.py beside this script

from formats.prepared import is_prepared, run, say, write_documents, write_pair_splits, write_splits
from formats.sword import SwordBible
from tfidf import TfidfIndex

from lmforge.data.corpus.base import Document
from lmforge.data.labeled.examples import LabeledExample
from lmforge.data.progress import track
from lmforge.data.sft import InstructionPair

SWORD = Path("usr/share/sword")  # under the unpacked root
MODULES = {"kjv": "engKJV2006eb", "web": "engWEB2015eb"}
NEGATIVES_FROM = ("book", "bible")
PAIRING_SEED = 0  # which references become negatives
MODERN_PROMPT = "Say in modern English: {verse}"

Reference = tuple[str, int, int]  # (OSIS book, chapter, verse)


def open_bible(debian: Path, part: str) -> SwordBible:
    return SwordBible(debian / SWORD, MODULES[part])


def chapter_documents(bible: SwordBible, part: str) -> Iterator[Document]:
    """One document per chapter of the module's versification, in canonical order."""
    chapters = bible.chapters()
    for book, chapter in track(chapters, f"reading the {part} Bible", total=len(chapters), unit="chapters"):
        yield bible.chapter_sentences(book, chapter)


def read_verses(bible: SwordBible, part: str) -> dict[Reference, str]:
    """The non-empty verses of a Bible, in canonical order."""
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
    negative[np.random.default_rng(PAIRING_SEED).permutation(len(references))[: len(references) // 2]] = True
    queries = np.flatnonzero(negative)
    first_of_text: dict[str, int] = {}
    text_keys = np.array([first_of_text.setdefault(text, i) for i, text in enumerate(web_texts)])
    book_numbers: dict[str, int] = {}
    book_keys = np.array([book_numbers.setdefault(book, len(book_numbers)) for book, _, _ in references])
    say(f"finding the most similar other verse of {len(queries):,} KJV verses by TF-IDF ({negatives_from})")
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


def write_text(debian: Path, out: Path) -> None:
    for part in MODULES:
        path = out / f"{part}.txt"
        if not is_prepared(path):
            write_documents(chapter_documents(open_bible(debian, part), part), path)


def write_pairs(debian: Path, out: Path) -> None:
    folders = {variant: out / "bible_paraphrase" / f"negatives_from={variant}" for variant in NEGATIVES_FROM}
    wanted = [variant for variant, folder in folders.items() if not is_prepared(folder)]
    if not wanted:
        return
    kjv, web = (read_verses(open_bible(debian, part), part) for part in MODULES)
    for variant in wanted:
        write_splits(pair_verses(kjv, web, variant), folders[variant])


def write_modern(debian: Path, out: Path) -> None:
    folder = out / "bible_modern"
    if is_prepared(folder):
        return
    kjv, web = (read_verses(open_bible(debian, part), part) for part in MODULES)
    references = [reference for reference in kjv if reference in web]
    pairs = [InstructionPair(MODERN_PROMPT.format(verse=kjv[ref]), web[ref]) for ref in references]
    write_pair_splits(pairs, [book for book, _, _ in references], folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what",
        choices=["text", "modern", "pairs"],
        help="the corpus parts, the modern-English instruction pairs or the paraphrase pairs",
    )
    parser.add_argument("--debian", type=Path, default=Path("data/debian"), help="the unpacked packages")
    parser.add_argument(
        "--out", type=Path, help="default: data/debian/text (text), data/sft (modern), data/finetune (pairs)"
    )
    args = parser.parse_args(argv)
    if args.what == "text":
        write_text(args.debian, args.out or Path("data/debian/text"))
    elif args.what == "modern":
        write_modern(args.debian, args.out or Path("data/sft"))
    else:
        write_pairs(args.debian, args.out or Path("data/finetune"))


if __name__ == "__main__":
    sys.exit(run(main))
