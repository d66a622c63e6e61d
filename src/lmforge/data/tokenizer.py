"""Tokenizers trained with the ``tokenizers`` library, cached under ``data/`` by their settings.

``wordpiece``: BERT's (normalised, optionally lower-cased, ``##`` continuations, [CLS]/[SEP]/[MASK]).
``bpe``: GPT-2's byte-level BPE: no normalisation and a byte alphabet, so any text round-trips
exactly, with one special token, ``<|endoftext|>``, between documents.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from lmforge.errors import ConfigError
from lmforge.io.tokenizers import CLS, END_OF_TEXT, SEP, SPECIAL_TOKENS, UNK, special_ids

log = logging.getLogger(__name__)

KINDS = ("wordpiece", "bpe")


@dataclass(frozen=True)
class TokenizerSettings:
    """``data.tokenizer``: train a vocabulary of ``kind``, or load ``path`` (a ``tokenizer.json``).

    ``lowercase`` and ``limit_alphabet`` apply to WordPiece only: byte-level BPE keeps the text as is.
    """

    kind: str = "wordpiece"
    path: str | None = None
    vocab_size: int = 30522
    lowercase: bool = True
    min_frequency: int = 2
    limit_alphabet: int = 1000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                "data.tokenizer.kind", f"data.tokenizer.kind={self.kind!r} is not one of {', '.join(KINDS)}"
            )
        smallest = self.base_size + 1
        if self.path is None and self.vocab_size < smallest:
            raise ConfigError(
                "data.tokenizer.vocab_size",
                f"data.tokenizer.vocab_size={self.vocab_size} is too small for {self.kind}: "
                f"at least {smallest}",
            )
        if self.path is not None and not Path(self.path).is_file():
            raise ConfigError(
                "data.tokenizer.path",
                f"data.tokenizer.path={self.path} does not exist: give a tokenizer.json file, or null to "
                "train one",
            )

    @property
    def base_size(self) -> int:
        """Tokens a trained vocabulary holds before it learns anything from text."""
        return 256 + 1 if self.kind == "bpe" else len(SPECIAL_TOKENS)  # bpe: the bytes and <|endoftext|>

    def training_settings(self) -> dict:
        settings = asdict(self)
        settings.pop("path")
        if self.kind == "bpe":  # not used by byte-level BPE: not part of its cache key
            settings.pop("lowercase")
            settings.pop("limit_alphabet")
        return settings

    def train(self, sentences: Iterable[str]) -> Tokenizer:
        return train_bpe(sentences, self) if self.kind == "bpe" else train_wordpiece(sentences, self)


def train_bpe(sentences: Iterable[str], settings: TokenizerSettings) -> Tokenizer:
    """A GPT-2 style byte-level BPE tokenizer (spaces belong to the following word: ``Ġword``)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=settings.vocab_size,
        min_frequency=settings.min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    return tokenizer


def train_wordpiece(sentences: Iterable[str], settings: TokenizerSettings) -> Tokenizer:
    """A BERT-style WordPiece tokenizer (BERT normaliser and pre-tokeniser, ``##`` continuations)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=settings.lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=settings.vocab_size,
        min_frequency=settings.min_frequency,
        limit_alphabet=settings.limit_alphabet,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=True,
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    ids = special_ids(tokenizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, ids.cls), (SEP, ids.sep)],
    )
    return tokenizer
