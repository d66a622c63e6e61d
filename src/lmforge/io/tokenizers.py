"""Tokenizer files and the special tokens our pipelines need: read (own padding and truncation
switched off), checked, written.

``wordpiece`` vocabularies (BERT's) carry [PAD] [UNK] [CLS] [SEP] [MASK]; byte-level ``bpe`` ones (GPT-2's,
LLaMA's) an end-of-text token. Training a tokenizer is the data pipeline's (``lmforge.data.tokenizer``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
END_OF_TEXT = "<|endoftext|>"
# The token that ends a text in byte-level BPE vocabularies: GPT-2's (ours), LLaMA 1-2's, LLaMA 3's.
END_OF_TEXT_TOKENS = (END_OF_TEXT, "</s>", "<|end_of_text|>")
REQUIRED_TOKENS = {"wordpiece": SPECIAL_TOKENS, "bpe": (END_OF_TEXT,)}


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
