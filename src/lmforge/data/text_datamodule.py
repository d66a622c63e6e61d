"""What every lmforge DataModule shares: the tokenizer settings, the sizes of its batches and their
checks, starting from another run's tokenizer (``use_tokenizer``), the tokenizer of a set of examples
(``prepare_tokenizer``), and the tokenizer that checkpoints carry (``restore``, ``state_dict``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
from tokenizers import Tokenizer

from lmforge.data.cache import atomic_directory, fingerprint
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import (
    check_special_tokens,
    load_tokenizer,
    save_tokenizer,
    tokenizer_kind,
    without_padding_and_truncation,
)

log = logging.getLogger(__name__)


class TextDataModule(pl.LightningDataModule):
    """Settings common to the pretraining corpora and the labeled sets, checked when built."""

    CHECKPOINT_OF: ClassVar[str] = "this task"  # the runs whose checkpoints this DataModule restores from

    def __init__(
        self,
        tokenizer: dict[str, Any],
        cache_dir: str,
        max_seq_len: int,
        batch_size: int,
        val_fraction: float,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.tokenizer_settings = TokenizerSettings(**tokenizer)
        self.cache_dir = Path(cache_dir)
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer: Tokenizer | None = None

    @property
    def kind(self) -> str:
        """``wordpiece`` (BERT) or ``bpe`` (GPT, LLaMA): the tokenizer the model reads."""
        return self.tokenizer_settings.kind

    def require(self, ok: bool, key: str, rule: str) -> None:
        """Raise a ``ConfigError`` naming ``key`` and its value unless ``ok``."""
        if not ok:
            raise ConfigError(key, f"{key}={getattr(self, key.split('.')[-1])} {rule}")

    def _check_settings(self) -> None:
        self.require(self.max_seq_len >= 8, "data.max_seq_len", "must be at least 8")
        self.require(self.batch_size >= 1, "data.batch_size", "must be at least 1")
        self.require(0 < self.val_fraction < 1, "data.val_fraction", "must be in (0, 1)")
        self.require(self.num_workers >= 0, "data.num_workers", "must be >= 0")

    def use_tokenizer(
        self,
        tokenizer: Tokenizer,
        source: str = "the pretrained model's tokenizer",
        key: str = "model.init_from",
    ) -> None:
        """Read text with ``tokenizer`` (a checkpoint's, a pretrained folder's) instead of training one;
        its own padding and truncation are switched off (``without_padding_and_truncation``)."""
        kind = tokenizer_kind(tokenizer)
        if kind != self.kind:
            raise ConfigError(
                key,
                f"{source} is a {kind} tokenizer, but this model reads {self.kind}: use the model family "
                "it was trained with (model=bert_* for WordPiece, gpt_* / llama_* for BPE)",
            )
        check_special_tokens(tokenizer, kind, source)
        self.tokenizer = without_padding_and_truncation(tokenizer, source)

    def prepare_tokenizer(
        self, folder: Path, texts: Iterable[str], decided_by: Mapping[str, Any], record: Mapping[str, Any]
    ) -> Tokenizer:
        """The tokenizer given by ``use_tokenizer`` / ``restore``, read from ``data.tokenizer.path``, or
        trained on ``texts`` (the training split's) once and cached under ``folder`` (the data's own
        cache folder), keyed by the tokenizer settings and ``decided_by`` (the split); ``record`` is
        written beside it (what it was trained on)."""
        if self.tokenizer is not None:
            return self.tokenizer
        kind = self.kind
        if self.tokenizer_settings.path is not None:
            path = self.tokenizer_settings.path
            log.info("using the tokenizer at %s", path)
            self.use_tokenizer(load_tokenizer(path, kind), str(path), "data.tokenizer.path")
            return self.tokenizer
        settings = self.tokenizer_settings.training_settings()
        directory = folder / f"{kind}-{fingerprint({**settings, **decided_by})}"
        if (directory / "tokenizer.json").is_file():
            log.info("reusing the cached tokenizer at %s", directory)
        else:
            log.info("training a %s tokenizer on the training split (%s)", kind, settings)
            tokenizer = self.tokenizer_settings.train(texts)
            with atomic_directory(directory) as scratch:
                save_tokenizer(tokenizer, scratch, {**record, **decided_by, **settings})
            log.info("saved the tokenizer (%d tokens) to %s", tokenizer.get_vocab_size(), directory)
        return load_tokenizer(directory / "tokenizer.json", kind)

    # ----------------------------------------------------------------------------------------------
    # Checkpoints carry the tokenizer, so a checkpoint is usable on its own (training one again is not
    # repeatable bit for bit: the ``tokenizers`` trainer breaks ties in hash order).

    def restore(self, checkpoint: dict[str, Any], ckpt_path: str) -> None:
        """Read text with the tokenizer a checkpoint (read from ``ckpt_path``, weights left out) stores."""
        saved = checkpoint.get(type(self).__qualname__, {}).get("tokenizer")
        if saved is None:
            raise ConfigError(
                "ckpt_path", f"{ckpt_path} holds no tokenizer: is it a checkpoint of {self.CHECKPOINT_OF}?"
            )
        self.use_tokenizer(Tokenizer.from_str(saved), f"the tokenizer of {ckpt_path}", "ckpt_path")
        log.info("using the tokenizer stored in %s", ckpt_path)

    def state_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_str()} if self.tokenizer is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("tokenizer")
        if saved is not None and self.tokenizer is not None and saved != self.tokenizer.to_str():
            raise ConfigError(
                "ckpt_path",
                "the checkpoint was trained with another tokenizer than this run's data settings make: "
                "resume with the same data and data.tokenizer settings",
            )
