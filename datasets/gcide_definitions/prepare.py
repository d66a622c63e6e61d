"""Prepare ``gcide_definitions``, an instruction-tuning set of word definitions, from the GCIDE
dictionary that ``scripts/fetch_debian.sh`` unpacked (Debian ``dict-gcide``; ``make data-debian`` runs both).

One pair per headword: ``{"prompt": "Define: lantern", "response": "<its first sense>"}``. The headword is
lower-cased; its entry is the first one in the dictionary whose headline spells it (an index line that
points into another word's entry, as ``lanthorn`` does into ``Lantern``, is skipped). The response is the
first sentence of the entry's first sense, cleaned as the corpus is (``formats.dictd.entry_senses``) and
cut at its first semicolon ("To make a retreat; to retire ..." gives "To make a retreat."); a sense that
only refers elsewhere ("See ...", "Same as ..."), does not start with a letter or is no definition
leaves the headword out. The pairs
are split by headword (10 % validation, 10 % test, seed 0), so no headword is in two splits.

Writes ``OUT/gcide_definitions/{train,val,test}.jsonl``; what is already written is kept.

    python datasets/gcide_definitions/prepare.py [--debian data/debian] [--out data/sft]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/: the shared formats package

from formats import PrepareError
from formats.dictd import entry_senses, headline_word, is_definition, read_entries, read_headwords
from formats.prepared import is_prepared, run, write_pair_splits

from lmforge.data.progress import track
from lmforge.data.sft import InstructionPair
from lmforge.data.text import split_sentences

GCIDE = Path("usr/share/dictd")  # under the unpacked root
NAME = "gcide_definitions"
PROMPT = "Define: {word}"
REFERENCES = ("See ", "Same as ")  # senses that send the reader to another entry


def first_definition(entry: str) -> str | None:
    """The first sentence of an entry's first sense, cut at its first semicolon, or None."""
    senses = entry_senses(entry)
    sentences = split_sentences(senses[0]) if senses else []
    if not sentences:
        return None
    definition = sentences[0].split(";", 1)[0].strip().rstrip(",:")
    if not definition[:1].isalpha() or definition.startswith(REFERENCES) or not is_definition(definition):
        return None
    return definition if definition[-1] in ".!?" else definition + "."


def definition_pairs(debian: Path) -> list[InstructionPair]:
    """One pair per lower-cased headword, in the index's order."""
    index, dictionary = debian / GCIDE / "gcide.index", debian / GCIDE / "gcide.dict.dz"
    for path in (index, dictionary):
        if not path.is_file():
            raise PrepareError(
                f"{path} is missing (Debian package dict-gcide): run `bash scripts/fetch_debian.sh {debian} "
                "dict-gcide` (make data-debian does)"
            )
    headwords = read_headwords(index)
    spans = sorted({span for _, span in headwords})
    entries = dict(zip(spans, read_entries(dictionary, spans), strict=True))
    pairs: dict[str, InstructionPair] = {}
    for word, span in track(headwords, "reading gcide", total=len(headwords), unit="headwords"):
        key = word.lower()
        if key in pairs or headline_word(entries[span]).lower() != key:
            continue
        definition = first_definition(entries[span])
        if definition is not None:
            pairs[key] = InstructionPair(PROMPT.format(word=key), definition)
    return list(pairs.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debian", type=Path, default=Path("data/debian"), help="the unpacked packages")
    parser.add_argument("--out", type=Path, default=Path("data/sft"), help="where gcide_definitions/ goes")
    args = parser.parse_args(argv)
    folder = args.out / NAME
    if not is_prepared(folder):
        pairs = definition_pairs(args.debian)
        write_pair_splits(pairs, [pair.prompt for pair in pairs], folder)


if __name__ == "__main__":
    sys.exit(run(main))
