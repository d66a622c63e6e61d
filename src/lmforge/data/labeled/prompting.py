"""A labeled set put into a prompt template, and the verbalizer's words in tokens (``objective=prompt_lm``).

BERT reads ``[CLS] <the encoder form, filled> [SEP]`` as one segment; its slot is the ``[MASK]``. GPT and
LLaMA read ``<|endoftext|> <the decoder form, filled>`` (the start of a document, as in pretraining); the
slot is its last token, whose next-token scores rate the words. Only ``{text}`` and ``{text_pair}`` are
cut to fit ``max_seq_len``, at their ends (the longer one first): the template's own tokens and the slot
always stay. A decoder reads a word as it would follow the template: after a space, unless the template
ends in whitespace.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.labeled.datamodule import ClassificationDataModule
from lmforge.data.labeled.encoding import EncodedSplit, fit_pair
from lmforge.data.labeled.examples import LabeledExample
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id, special_ids
from lmforge.objectives.prompt import LITERAL, SLOT, TEXT, TEXT_PAIR, Piece, PromptTemplate

log = logging.getLogger(__name__)

LabelWords = list[list[list[int]]]  # label index -> its words -> each word's token ids


def copy_without_limits(tokenizer: Tokenizer) -> Tokenizer:
    """A copy that neither pads nor truncates: the template decides what is cut."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def spaced_pieces(pieces: Sequence[Piece]) -> list[Piece]:
    """Byte-level BPE reads a space as part of the next word: a literal's last space before a field
    moves onto the field (a field's ``value`` is what goes in front of its text)."""
    moved: list[Piece] = []
    for piece in pieces:
        previous = moved[-1] if moved else None
        after_space = previous is not None and previous.kind == LITERAL and previous.value.endswith(" ")
        if piece.kind in (TEXT, TEXT_PAIR) and after_space:
            moved[-1] = Piece(LITERAL, previous.value[:-1])
            piece = Piece(piece.kind, " ")
        moved.append(piece)
    return [piece for piece in moved if piece.kind != LITERAL or piece.value]


class PromptEncoder:
    """Fills the template a model of ``kind`` reads (``wordpiece``: BERT, ``bpe``: decoders) with
    examples, within ``max_seq_len`` tokens; records each example's slot."""

    def __init__(self, tokenizer: Tokenizer, kind: str, max_seq_len: int, template: PromptTemplate) -> None:
        self.decoder = kind == "bpe"
        self.tokenizer = copy_without_limits(tokenizer)
        if self.decoder:
            self.pad_id = end_of_text_id(self.tokenizer)
            self.start, self.end, self.mask_id = [self.pad_id], [], None
            pieces = spaced_pieces(template.form(decoder=True))
        else:
            ids = special_ids(self.tokenizer)
            self.pad_id, self.mask_id = ids.pad, ids.mask
            self.start, self.end = [ids.cls], [ids.sep]
            pieces = list(template.form(decoder=False))
        # (kind, a literal's ids, what goes in front of a field's text) per piece
        self.pieces = [
            (p.kind, self.tokenizer.encode(p.value, add_special_tokens=False).ids, "")
            if p.kind == LITERAL
            else (p.kind, [], p.value)
            for p in pieces
        ]
        literal = sum(len(ids) for kind, ids, _ in self.pieces if kind == LITERAL)
        slot = int(not self.decoder)
        fixed = len(self.start) + len(self.end) + literal + slot
        fields = sum(kind in (TEXT, TEXT_PAIR) for kind, _, _ in self.pieces)
        self.budget = max_seq_len - fixed
        if self.budget < fields:
            raise ConfigError(
                "data.max_seq_len",
                f"the template takes {fixed} of data.max_seq_len={max_seq_len} tokens (special tokens and "
                f"the slot included), leaving {max(self.budget, 0)} for the text: raise data.max_seq_len "
                "or shorten the template",
            )

    def _field_ids(self, examples: Sequence[LabeledExample], field: str, before: str) -> list[list[int]]:
        texts = [before + (getattr(example, field) or "") for example in examples]
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode(self, examples: Sequence[LabeledExample], labels: np.ndarray) -> EncodedSplit:
        fields = {
            kind: self._field_ids(examples, kind, before)
            for kind, _, before in self.pieces
            if kind in (TEXT, TEXT_PAIR)
        }
        rows, slots = [], []
        for index in range(len(examples)):
            keep = self._kept_lengths({kind: len(ids[index]) for kind, ids in fields.items()})
            row = list(self.start)
            slot = -1
            for kind, literal, _ in self.pieces:
                if kind == LITERAL:
                    row.extend(literal)
                elif kind == SLOT:
                    slot = len(row)
                    row.append(self.mask_id)
                else:
                    row.extend(fields[kind][index][: keep[kind]])
            row.extend(self.end)
            rows.append(row)
            slots.append(len(row) - 1 if self.decoder else slot)
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        return EncodedSplit(
            ids=np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum())),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            type_ids=None,  # one segment: BERT reads segment 0 throughout
            labels=np.asarray(labels, dtype=np.int64),
            slots=np.asarray(slots, dtype=np.int64),
        )

    def _kept_lengths(self, lengths: dict[str, int]) -> dict[str, int]:
        """How many tokens of each field fit the budget: the longer text is cut first."""
        if len(lengths) == 1:
            ((kind, length),) = lengths.items()
            return {kind: min(length, self.budget)}
        first, second = fit_pair(lengths[TEXT], lengths[TEXT_PAIR], self.budget)
        return {TEXT: first, TEXT_PAIR: second}


def word_ids(
    tokenizer: Tokenizer, template: PromptTemplate, decoder: bool, label_names: Sequence[str], source: str
) -> LabelWords:
    """Each label's words in tokens, in the order of ``label_names``; the words must name exactly the
    labels of the data, be spelt without an unknown token, and tell the labels apart (BERT by each word's
    first piece, which is what it scores; decoders by the whole word)."""
    words = template.words
    for label in words:
        if label not in label_names:
            raise ConfigError(
                "template.words",
                f"template.words names the label {label!r}, which {source} does not have (its labels: "
                f"{', '.join(label_names)})",
            )
    for label in label_names:
        if label not in words:
            raise ConfigError(
                "template.words",
                f"the label {label!r} of {source} has no words in template.words: add "
                f"template.words.{label}=[<a word>]",
            )
    copy = copy_without_limits(tokenizer)
    unknown = unknown_id(copy, decoder)
    space = " " if decoder and not (template.decoder or "").endswith(tuple(" \n\t")) else ""
    seen: dict[Any, tuple[str, str]] = {}
    out: LabelWords = []
    for label in label_names:
        listed = []
        for word in words[label]:
            ids = copy.encode(space + word, add_special_tokens=False).ids
            if not ids or unknown in ids:
                raise ConfigError(
                    "template.words",
                    f"the tokenizer cannot spell {word!r}, a word of the label {label!r} (it reads as an "
                    "unknown token): choose another word",
                )
            key = tuple(ids) if decoder else ids[0]
            if key in seen and seen[key][0] != label:
                other_label, other = seen[key]
                what = "are the same tokens" if decoder else "start with the same piece, which BERT scores"
                raise ConfigError(
                    "template.words",
                    f"the words {other!r} (label {other_label!r}) and {word!r} (label {label!r}) {what}: "
                    "choose words that tell the labels apart",
                )
            seen[key] = (label, word)
            listed.append(ids)
        out.append(listed)
    return out


def unknown_id(tokenizer: Tokenizer, decoder: bool) -> int | None:
    """The id of the unknown token (WordPiece's ``[UNK]``; a BPE model's own, if it has one)."""
    if not decoder:
        return special_ids(tokenizer).unk
    token = getattr(tokenizer.model, "unk_token", None)
    return tokenizer.token_to_id(token) if token else None


def describe_words(tokenizer: Tokenizer, label_names: Sequence[str], words: LabelWords, decoder: bool) -> str:
    """``positive: good | negative: bad``, with the pieces of words longer than one token."""
    parts = []
    for label, listed in zip(label_names, words, strict=True):
        shown = []
        for ids in listed:
            pieces = [tokenizer.id_to_token(i) for i in ids]
            text = tokenizer.decode(ids).strip()
            shown.append(text if len(ids) == 1 else f"{text} ({' '.join(pieces)})")
        parts.append(f"{label}: {', '.join(shown)}")
    scored = "every token of each word" if decoder else "the first piece of each word"
    return f"verbalizer ({scored} is scored): " + " | ".join(parts)


class PromptDataModule(ClassificationDataModule):
    """``ClassificationDataModule`` whose examples are put into ``template``; batches also hold ``slots``,
    the position each example's words are scored at, and ``label_words`` gives the verbalizer in tokens."""

    def __init__(self, template: PromptTemplate, **settings: Any) -> None:
        super().__init__(**settings)
        self.template = PromptTemplate.from_dict(template)
        self._label_words: LabelWords | None = None

    @property
    def decoder(self) -> bool:
        return self.kind == "bpe"

    def prepare_data(self) -> None:
        """Besides the splits and tokenizer: the template fits ``max_seq_len``, takes the texts the set
        has, and its words spell the labels; all before any training."""
        if self.splits is not None and self._label_words is not None:
            return
        super().prepare_data()
        self._check_pairs()
        self.make_encoder()
        self._label_words = word_ids(
            self.tokenizer, self.template, self.decoder, self._label_names, self.source.describe("train")
        )
        log.info(describe_words(self.tokenizer, self._label_names, self._label_words, self.decoder))

    def _check_pairs(self) -> None:
        takes = self.template.takes_pairs(self.decoder)
        form = "template.decoder" if self.decoder else "template.encoder"
        for split, examples in self.splits.items():
            has = [example.text_pair is not None for example in examples]
            if any(has) and not takes:
                raise ConfigError(
                    form,
                    f"the {split} split of {self.source.describe(split)} holds text pairs, and {form} has no "
                    "{text_pair}: put it into the template",
                )
            if takes and not all(has):
                raise ConfigError(
                    form,
                    f"{form} holds {{text_pair}}, and the {split} split of {self.source.describe(split)} "
                    "has single texts: drop it, or give data.source.text_pair_column",
                )

    def make_encoder(self) -> PromptEncoder:
        return PromptEncoder(self.tokenizer, self.kind, self.max_seq_len, self.template)

    def use_tokenizer(
        self,
        tokenizer: Tokenizer,
        source: str = "the pretrained model's tokenizer",
        key: str = "model.init_from",
    ) -> None:
        super().use_tokenizer(tokenizer, source, key)
        self._label_words = None  # spelt with another tokenizer, if any

    @property
    def label_words(self) -> LabelWords:
        if self._label_words is None:
            self.prepare_data()
        return [[list(ids) for ids in listed] for listed in self._label_words]
