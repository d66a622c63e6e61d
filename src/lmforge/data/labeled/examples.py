"""One labeled example, and the de-duplication that keeps a text from landing in two splits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LabeledExample:
    """A text (or a pair of texts) and its label.

    ``label`` is always a string (``"spam"``, ``"4"``): the DataModule numbers the labels itself.
    ``group`` keeps related examples in one split (the book of a Bible verse); ``None``: no groups.
    """

    text: str
    label: str
    text_pair: str | None = None
    group: str | None = None


def deduplicate(examples: Iterable[LabeledExample]) -> list[LabeledExample]:
    """The examples without repeats of the same text (or pair); the first label seen wins."""
    seen: set[tuple[str, str | None]] = set()
    unique = []
    for example in examples:
        key = (example.text, example.text_pair)
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique
