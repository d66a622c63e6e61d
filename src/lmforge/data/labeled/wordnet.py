"""WordNet supersenses: the lexicographer file of a noun synset (``noun.animal``, ``noun.time``, ...),
predicted from its gloss. Debian ``wordnet-base``, ``usr/share/wordnet/data.noun``.

A data line is ``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``; the gloss holds the
definition, then examples after ``; "``, which are cut off (the examples often name the word).
The file starts with the license, each line of it indented by two spaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.data.labeled.examples import LabeledExample
from lmforge.data.labeled.source import LabeledSource, file_stats, require_file
from lmforge.errors import ConfigError

DATA_NOUN = Path("wordnet/usr/share/wordnet/data.noun")  # under root, as `make data-finetune` unpacks it
FETCH = "run `make data-finetune` (it unpacks Debian's wordnet-base into data/finetune/wordnet)"
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


class WordNetSupersenseSource(LabeledSource):
    """One example per noun synset: its gloss, labeled with its lexicographer file (26 classes).

    ``lemma: true`` puts the synset's first lemma before the gloss (``dress uniform: a military
    uniform ...``); by default the text is the gloss alone, so the label is read from the definition.
    """

    name = "wordnet_supersense"

    def __init__(self, root: str = "data/finetune", lemma: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.lemma = lemma

    @property
    def path(self) -> Path:
        return self.root / DATA_NOUN

    def check(self) -> None:
        require_file(self.path, "data.source.root", FETCH)

    def settings(self) -> dict[str, Any]:
        return {"source": self.name, "data_noun": file_stats(self.path), "lemma": self.lemma}

    def read(self) -> list[LabeledExample]:
        examples = []
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.startswith(" ") or not line.strip():  # the license header
                    continue
                example = self.example(line, number)
                if example is not None:
                    examples.append(example)
        return examples

    def example(self, line: str, number: int) -> LabeledExample | None:
        """The example of one synset line; ``None`` for a synset without a definition."""
        fields, _, gloss = line.partition(" | ")
        parts = fields.split()
        if len(parts) < 5 or not parts[1].isdigit() or int(parts[1]) not in NOUN_FILES:
            raise ConfigError(
                "data.source.root",
                f"{self.path}:{number} is not a noun synset line (`offset lex_filenum n ... | gloss`)",
            )
        definition = gloss.split('; "', 1)[0].strip()
        if not definition:
            return None
        if self.lemma:
            definition = f"{parts[4].replace('_', ' ')}: {definition}"
        return LabeledExample(definition, NOUN_FILES[int(parts[1])])
