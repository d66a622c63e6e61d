"""Tokenizers trained with the ``tokenizers`` library, cached under ``data/`` by their settings.

``wordpiece``: BERT's (normalised, optionally lower-cased, ``##`` continuations, [CLS]/[SEP]/[MASK]).
``bpe``: GPT-2's byte-level BPE: no normalisation and a byte alphabet, so any text round-trips
exactly, with one special token, ``<|endoftext|>``, between documents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
END_OF_TEXT = "<|endoftext|>"
# The token that ends a text in byte-level BPE vocabularies: GPT-2's (ours), LLaMA 1-2's, LLaMA 3's.
END_OF_TEXT_TOKENS = (END_OF_TEXT, "</s>", "<|end_of_text|>")
KINDS = ("wordpiece", "bpe")
REQUIRED_TOKENS = {"wordpiece": SPECIAL_TOKENS, "bpe": (END_OF_TEXT,)}


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


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    def all(self) -> tuple[int, ...]:
        return (self.pad, self.unk, self.cls, self.sep, self.mask)


def end_of_text_token(tokenizer: Tokenizer) -> str | None:
    """The end-of-text token a BPE vocabulary has, in the order of ``END_OF_TEXT_TOKENS``."""
    return next((t for t in END_OF_TEXT_TOKENS if tokenizer.token_to_id(t) is not None), None)


def check_special_tokens(tokenizer: Tokenizer, kind: str, source: str) -> dict[str, int]:
    """The ids of the special tokens ``kind``'s pipelines need, by name (for BPE under ``END_OF_TEXT``,
    whichever end-of-text token the vocabulary uses); a ``ConfigError`` naming what is missing."""
    if kind == "bpe":
        token = end_of_text_token(tokenizer)
        if token is None:
            raise ConfigError(
                "data.tokenizer.path",
                f"{source} lacks an end-of-text token ({', '.join(END_OF_TEXT_TOKENS)}) that causal-LM "
                "pretraining and decoder classification need",
            )
        return {END_OF_TEXT: tokenizer.token_to_id(token)}
    ids = {token: tokenizer.token_to_id(token) for token in REQUIRED_TOKENS[kind]}
    missing = [token for token, index in ids.items() if index is None]
    if missing:
        raise ConfigError(
            "data.tokenizer.path",
            f"{source} lacks the special tokens {', '.join(missing)} that BERT pretraining needs",
        )
    return ids


def special_ids(tokenizer: Tokenizer, source: str = "the tokenizer") -> SpecialIds:
    ids = check_special_tokens(tokenizer, "wordpiece", source)
    return SpecialIds(ids[PAD], ids[UNK], ids[CLS], ids[SEP], ids[MASK])


def end_of_text_id(tokenizer: Tokenizer, source: str = "the tokenizer") -> int:
    return check_special_tokens(tokenizer, "bpe", source)[END_OF_TEXT]


def tokenizer_kind(tokenizer: Tokenizer) -> str:
    """``bpe`` or ``wordpiece``, from the model inside a tokenizer (for checkpoints and files)."""
    return "bpe" if json.loads(tokenizer.to_str())["model"]["type"] == "BPE" else "wordpiece"


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


def without_padding_and_truncation(tokenizer: Tokenizer, source: str) -> Tokenizer:
    """``tokenizer`` (changed in place) with its own padding and truncation switched off, as every
    pipeline here cuts, packs and pads sequences itself: a tokenizer.json that pads to a fixed length
    (sentence-transformers' do, to 128) would fill the token shards with [PAD]. Logs what it switched off
    in one line."""
    switched = []
    if tokenizer.padding is not None:
        padding = tokenizer.padding
        length = f"to {padding['length']}" if padding.get("length") else "to the longest"
        switched.append(f"padding ({length} with {padding.get('pad_token')})")
        tokenizer.no_padding()
    if tokenizer.truncation is not None:
        switched.append(f"truncation (at {tokenizer.truncation['max_length']} tokens)")
        tokenizer.no_truncation()
    if switched:
        log.info(
            "%s: switched off its own %s; lmforge cuts, packs and pads sequences itself",
            source,
            " and ".join(switched),
        )
    return tokenizer


def load_tokenizer(path: str | Path, kind: str = "wordpiece") -> Tokenizer:
    """Read a ``tokenizer.json`` and check it has the special tokens that ``kind``'s objective needs;
    its own padding and truncation are switched off."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a bare Exception for any parse error
        raise ConfigError("data.tokenizer.path", f"{path} is not a tokenizer.json file ({err})") from err
    check_special_tokens(tokenizer, kind, str(path))
    return without_padding_and_truncation(tokenizer, str(path))


def save_tokenizer(tokenizer: Tokenizer, directory: Path, settings: dict) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
