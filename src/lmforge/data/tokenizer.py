"""WordPiece tokenizers trained with the ``tokenizers`` library, cached under ``data/`` by their settings."""

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


@dataclass(frozen=True)
class WordPieceSettings:
    """``data.tokenizer``: train a WordPiece vocabulary, or load ``path`` (a ``tokenizer.json``)."""

    path: str | None = None
    vocab_size: int = 30522
    lowercase: bool = True
    min_frequency: int = 2
    limit_alphabet: int = 1000

    def __post_init__(self) -> None:
        if self.path is None and self.vocab_size < len(SPECIAL_TOKENS) + 1:
            raise ConfigError(
                "data.tokenizer.vocab_size", f"data.tokenizer.vocab_size={self.vocab_size} is too small"
            )
        if self.path is not None and not Path(self.path).is_file():
            raise ConfigError(
                "data.tokenizer.path",
                f"data.tokenizer.path={self.path} does not exist: give a tokenizer.json file, or null to "
                "train one",
            )

    def training_settings(self) -> dict:
        settings = asdict(self)
        settings.pop("path")
        return {"kind": "wordpiece", **settings}


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    def all(self) -> tuple[int, ...]:
        return (self.pad, self.unk, self.cls, self.sep, self.mask)


def special_ids(tokenizer: Tokenizer, source: str = "the tokenizer") -> SpecialIds:
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    missing = [token for token, index in ids.items() if index is None]
    if missing:
        raise ConfigError(
            "data.tokenizer.path",
            f"{source} lacks the special tokens {', '.join(missing)} that BERT pretraining needs",
        )
    return SpecialIds(ids[PAD], ids[UNK], ids[CLS], ids[SEP], ids[MASK])


def train_wordpiece(
    sentences: Iterable[str], settings: WordPieceSettings, length: int | None = None
) -> Tokenizer:
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
    tokenizer.train_from_iterator(sentences, trainer=trainer, length=length)
    ids = special_ids(tokenizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, ids.cls), (SEP, ids.sep)],
    )
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a bare Exception for any parse error
        raise ConfigError("data.tokenizer.path", f"{path} is not a tokenizer.json file ({err})") from err
    special_ids(tokenizer, source=str(path))
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, directory: Path, settings: dict) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
