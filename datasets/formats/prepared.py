"""Writers of the formats lmforge reads, each file or folder written whole or not at all.

Corpus text (``data=debian_docs``, any ``PreparedCorpus``): one sentence per line, a blank line after
each document. Labeled sets (``PreparedSetSource``): ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` with
the fields ``text``, ``label`` and, where the set has them, ``text_pair`` and ``group``. Instruction
pairs (``InstructionFiles``): the same three files with the fields ``prompt`` and ``response``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from lmforge.data.corpus.base import Document
from lmforge.data.labeled.examples import LabeledExample, deduplicate
from lmforge.data.labeled.splits import grouped_split, stratified_split
from lmforge.data.sft import InstructionPair
from lmforge.errors import ConfigError

from . import PrepareError

# The splits lmforge drew from these sets before they were prepared as files (data.split_seed=0,
# data.val_fraction=0.1, data.test_fraction=0.1): the same examples land in the same split.
SPLIT_SEED = 0
FRACTIONS = {"val": 0.1, "test": 0.1}


def say(message: str) -> None:
    print(f"prepare: {message}", flush=True)


def is_prepared(path: Path) -> bool:
    """True, and says so, when ``path`` was prepared before (the scripts never overwrite)."""
    if path.exists():
        say(f"{path} is already prepared (delete it to prepare it again)")
        return True
    return False


def write_documents(documents: Iterable[Document], path: Path) -> None:
    """Corpus text: one sentence per line, a blank line after each document; empty documents left out."""
    partial = path.with_name(path.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    n_documents = n_sentences = n_bytes = 0
    try:
        with partial.open("w", encoding="utf-8") as file:
            for document in documents:
                if document:
                    text = "\n".join(document) + "\n"
                    file.write(text + "\n")
                    n_documents, n_sentences = n_documents + 1, n_sentences + len(document)
                    n_bytes += len(text.encode())
        if n_documents == 0:
            raise PrepareError(f"no text was found for {path}: is the download complete?")
    except BaseException:
        partial.unlink()
        raise
    partial.replace(path)
    size = f"{n_bytes / 1e6:.1f} MB of sentences"  # a newline each, the blank lines not counted
    say(f"wrote {path}: {n_documents:,} documents, {n_sentences:,} sentences, {size}")


def split_examples(examples: Sequence[LabeledExample]) -> dict[str, list[LabeledExample]]:
    """Repeated texts left out, then whole groups (if the examples have groups) or each label cut by
    ``FRACTIONS``; each split keeps the order of ``examples``."""
    pool = deduplicate(examples)
    if any(example.group is not None for example in pool):
        indices = grouped_split([str(example.group) for example in pool], FRACTIONS, SPLIT_SEED)
    else:
        indices = stratified_split([example.label for example in pool], FRACTIONS, SPLIT_SEED)
    return {split: [pool[i] for i in index] for split, index in indices.items()}


def write_splits(examples: Sequence[LabeledExample], folder: Path) -> None:
    """``train`` / ``val`` / ``test.jsonl`` of ``split_examples`` in ``folder``."""
    if not examples:
        raise PrepareError(f"no examples were found for {folder}: is the download complete?")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    splits = split_examples(examples)
    for split, members in splits.items():
        with (partial / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for example in members:
                fields = {"text": example.text, "text_pair": example.text_pair, "label": example.label}
                fields["group"] = example.group
                record = {key: value for key, value in fields.items() if value is not None}
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
    partial.rename(folder)
    counts = " / ".join(f"{len(splits[split]):,}" for split in ("train", "val", "test"))
    say(f"wrote {folder}: {counts} examples (train / val / test), {len({e.label for e in examples})} labels")


def write_pair_splits(pairs: Sequence[InstructionPair], groups: Sequence[str], folder: Path) -> None:
    """``train`` / ``val`` / ``test.jsonl`` of prompt/response pairs in ``folder``, whole groups (the
    pair's headword, its book) in one split, cut by ``FRACTIONS``; each split keeps the pairs' order."""
    if not pairs:
        raise PrepareError(f"no pairs were found for {folder}: is the download complete?")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    splits = grouped_split(list(groups), FRACTIONS, SPLIT_SEED)
    for split, members in splits.items():
        with (partial / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for index in members:
                record = {"prompt": pairs[index].prompt, "response": pairs[index].response}
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
    partial.rename(folder)
    counts = " / ".join(f"{len(splits[split]):,}" for split in ("train", "val", "test"))
    say(f"wrote {folder}: {counts} pairs (train / val / test), {len(set(groups)):,} groups")


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """The exit status of a prepare script: 0, or 2 with its error on one line."""
    try:
        main(argv)
    except (PrepareError, ConfigError) as error:  # a set too small to split says so in one line
        print(f"prepare: {error}", file=sys.stderr)
        return 2
    return 0
