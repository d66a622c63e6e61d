"""Prepare the ``wordnet_supersense`` set from Debian's ``wordnet-base``, which
``scripts/fetch_finetune.sh`` unpacks (``make data-finetune`` runs both).

One example per noun synset of ``usr/share/wordnet/data.noun``: its definition, labeled with its
lexicographer file (26 classes: ``noun.animal``, ``noun.time``, ...). A data line is
``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``; the gloss holds the definition, then
examples after ``; "``, which are cut off (they often name the word). The file starts with the
license, each line of it indented by two spaces. Two variants, each split on its own texts:
``OUT/wordnet_supersense/lemma=false/`` (the definition alone) and ``lemma=true/`` (the synset's first
lemma before it: ``dress uniform: a military uniform ...``). What is already written is kept.

    python datasets/wordnet/prepare.py [--wordnet data/finetune/wordnet] [--out data/finetune]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/: the shared formats package

from formats import PrepareError
from formats.prepared import is_prepared, run, write_splits

from lmforge.data.labeled.examples import LabeledExample

DATA_NOUN = Path("usr/share/wordnet/data.noun")  # under the unpacked package
# The noun lexicographer files, by number (WordNet's lexnames(5WN)).
NOUN_FILES = {
    3: "noun.Tops",
    4: "noun.act",
    5: "noun.animal",
    6: "noun.artifact",
    7: "noun.attribute",
    8: "noun.body",
    9: "noun.cognition",
    10: "noun.communication",
    11: "noun.event",
    12: "noun.feeling",
    13: "noun.food",
    14: "noun.group",
    15: "noun.location",
    16: "noun.motive",
    17: "noun.object",
    18: "noun.person",
    19: "noun.phenomenon",
    20: "noun.plant",
    21: "noun.possession",
    22: "noun.process",
    23: "noun.quantity",
    24: "noun.relation",
    25: "noun.shape",
    26: "noun.state",
    27: "noun.substance",
    28: "noun.time",
}


def synset_example(line: str, where: str, lemma: bool) -> LabeledExample | None:
    """The example of one synset line; ``None`` for a synset without a definition."""
    fields, _, gloss = line.partition(" | ")
    parts = fields.split()
    if len(parts) < 5 or not parts[1].isdigit() or int(parts[1]) not in NOUN_FILES:
        raise PrepareError(f"{where} is not a noun synset line (`offset lex_filenum n ... | gloss`)")
    definition = gloss.split('; "', 1)[0].strip()
    if not definition:
        return None
    if lemma:
        definition = f"{parts[4].replace('_', ' ')}: {definition}"
    return LabeledExample(definition, NOUN_FILES[int(parts[1])])


def noun_examples(data_noun: Path, lemma: bool) -> list[LabeledExample]:
    if not data_noun.is_file():
        raise PrepareError(
            f"{data_noun} is missing: run `bash scripts/fetch_finetune.sh` (make data-finetune does)"
        )
    examples = []
    with data_noun.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.startswith(" ") or not line.strip():  # the license header
                continue
            example = synset_example(line, f"{data_noun}:{number}", lemma)
            if example is not None:
                examples.append(example)
    return examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wordnet", type=Path, default=Path("data/finetune/wordnet"), help="the unpacked package"
    )
    parser.add_argument("--out", type=Path, default=Path("data/finetune"), help="where the set's folder goes")
    args = parser.parse_args(argv)
    for lemma in (False, True):
        folder = args.out / "wordnet_supersense" / f"lemma={str(lemma).lower()}"
        if not is_prepared(folder):
            write_splits(noun_examples(args.wordnet / DATA_NOUN, lemma), folder)


if __name__ == "__main__":
    sys.exit(run(main))
