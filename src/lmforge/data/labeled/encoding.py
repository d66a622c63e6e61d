"""Texts -> token ids for a classifier, once per split, and the batches built from them.

WordPiece (BERT): ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` by the tokenizer's own post-processor,
with segment ids 0 / 1, truncated longest-first. Byte-level BPE (decoders): ``A <|endoftext|>`` or
``A <|endoftext|> B <|endoftext|>``; the classifier reads the final ``<|endoftext|>``, the last real
token, so truncation cuts the end of the text(s) and keeps it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer, processors
from torch.utils.data import Dataset

from lmforge.data.labeled.examples import LabeledExample
from lmforge.io.tokenizers import CLS, SEP, end_of_text_id, special_ids

# token ids, segment ids (WordPiece) or None, label; prompt templates add the slot their words are scored at
Item = tuple[np.ndarray, np.ndarray | None, int] | tuple[np.ndarray, np.ndarray | None, int, int]


@dataclass
class EncodedSplit(Dataset):
    """The token ids of a split's examples, stored flat: example i is ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray  # int32, every example's tokens one after another
    offsets: np.ndarray  # int64, len(examples) + 1
    type_ids: np.ndarray | None  # int8 segment ids beside ``ids`` (WordPiece), else None
    labels: np.ndarray  # int64 label indices
    slots: np.ndarray | None = None  # int64 position of each example's slot (prompt templates), else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Item:
        span = slice(self.offsets[index], self.offsets[index + 1])
        types = None if self.type_ids is None else self.type_ids[span]
        item = self.ids[span], types, int(self.labels[index])
        return item if self.slots is None else (*item, int(self.slots[index]))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def fit_pair(first: int, second: int, budget: int) -> tuple[int, int]:
    """Lengths to keep of two texts that must fit ``budget`` tokens: trim the longer one first."""
    if first + second <= budget:
        return first, second
    short = min(first, second, budget // 2)  # the shorter text stays whole if it fits in half
    return (short, budget - short) if first <= second else (budget - short, short)


class ClassificationEncoder:
    """Encodes examples with a tokenizer of ``kind`` (``wordpiece`` or ``bpe``) to ``max_seq_len`` tokens."""

    def __init__(self, tokenizer: Tokenizer, kind: str, max_seq_len: int) -> None:
        self.kind = kind
        self.max_seq_len = max_seq_len
        # a copy: truncation settings would otherwise change the tokenizer a checkpoint stores
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        if kind == "wordpiece":
            ids = special_ids(self.tokenizer)
            self.pad_id = ids.pad
            if self.tokenizer.post_processor is None:  # a tokenizer.json made elsewhere
                self.tokenizer.post_processor = processors.TemplateProcessing(
                    single=f"{CLS} $A {SEP}",
                    pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
                    special_tokens=[(CLS, ids.cls), (SEP, ids.sep)],
                )
            self.tokenizer.enable_truncation(max_seq_len, strategy="longest_first")
        else:
            self.pad_id = self.end_of_text = end_of_text_id(self.tokenizer)
            self.tokenizer.no_truncation()

    def encode(self, examples: Sequence[LabeledExample], labels: np.ndarray) -> EncodedSplit:
        if self.kind == "wordpiece":
            inputs = [e.text if e.text_pair is None else (e.text, e.text_pair) for e in examples]
            encodings = self.tokenizer.encode_batch(inputs)
            ids = [encoding.ids for encoding in encodings]
            types = [encoding.type_ids for encoding in encodings]
        else:
            ids, types = self.decoder_ids(examples), None
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return EncodedSplit(
            ids=np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum())),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            type_ids=None
            if types is None
            else np.fromiter(itertools.chain.from_iterable(types), dtype=np.int8, count=int(lengths.sum())),
            labels=np.asarray(labels, dtype=np.int64),
        )

    def decoder_ids(self, examples: Sequence[LabeledExample]) -> list[list[int]]:
        """``A <eot>`` or ``A <eot> B <eot>``, the text(s) cut at their ends to keep the final ``<eot>``."""
        first = self.tokenizer.encode_batch([e.text for e in examples], add_special_tokens=False)
        pairs = [i for i, e in enumerate(examples) if e.text_pair is not None]
        second = dict(
            zip(
                pairs,
                self.tokenizer.encode_batch([examples[i].text_pair for i in pairs], add_special_tokens=False),
                strict=True,
            )
        )
        eot = self.end_of_text
        ids = []
        for i, encoding in enumerate(first):
            if i not in second:
                ids.append([*encoding.ids[: self.max_seq_len - 1], eot])
                continue
            a, b = encoding.ids, second[i].ids
            keep_a, keep_b = fit_pair(len(a), len(b), self.max_seq_len - 2)
            ids.append([*a[:keep_a], eot, *b[:keep_b], eot])
        return ids


class ClassificationCollator:
    """Right-pads a batch to its longest example: ``input_ids``, ``attention_mask``, ``labels``,
    ``token_type_ids`` for WordPiece, and ``slots`` for prompt templates; every tensor int64."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        width = max(len(item[0]) for item in items)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.int64)
        attention_mask = torch.zeros((len(items), width), dtype=torch.int64)
        with_types = items[0][1] is not None
        token_type_ids = torch.zeros((len(items), width), dtype=torch.int64) if with_types else None
        for row, (ids, types, *_) in enumerate(items):
            input_ids[row, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
            attention_mask[row, : len(ids)] = 1
            if token_type_ids is not None:
                token_type_ids[row, : len(ids)] = torch.from_numpy(types.astype(np.int64))
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([item[2] for item in items], dtype=torch.int64),
        }
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        if len(items[0]) == 4:
            batch["slots"] = torch.tensor([item[3] for item in items], dtype=torch.int64)
        return batch
