"""The LightningDataModule for BERT pretraining: corpus -> tokenizer -> token arrays -> masked batches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from lmforge.data.bert_dataset import BertPretrainingDataset, build_chunks
from lmforge.data.cache import atomic_directory, fingerprint
from lmforge.data.corpus.base import Corpus
from lmforge.data.masking import MaskedLMCollator
from lmforge.data.sampler import LengthGroupedSampler
from lmforge.data.tokenized import FORMAT_VERSION, TokenizedCorpus
from lmforge.data.tokenizer import (
    SPECIAL_TOKENS,
    WordPieceSettings,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    train_wordpiece,
)
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

_SPLIT_SEED = 0  # the train/val split depends on the corpus only, never on the run's seed


class PretrainingDataModule(pl.LightningDataModule):
    """Masked-LM (+ next-sentence) batches from any ``Corpus``.

    ``prepare_data`` trains or loads the tokenizer and tokenises the corpus into ``cache_dir``, each
    step keyed by its inputs and reused when they have not changed. ``setup`` splits documents into
    train and validation (no document in both) and cuts them into examples.
    """

    def __init__(
        self,
        corpus: Corpus,
        tokenizer: dict[str, Any],
        cache_dir: str,
        max_seq_len: int = 128,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        val_draws: int = 1,
        short_seq_prob: float = 0.1,
        nsp: bool = True,
        mlm_probability: float = 0.15,
        mask_token_ratio: float = 0.8,
        random_token_ratio: float = 0.1,
        group_by_length: bool = True,
        num_workers: int = 0,
        pad_to_multiple_of: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.corpus = corpus
        self.tokenizer_settings = WordPieceSettings(**tokenizer)
        self.cache_dir = Path(cache_dir)
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.val_draws = val_draws
        self.short_seq_prob = short_seq_prob
        self.nsp = nsp
        self.mlm_probability = mlm_probability
        self.mask_token_ratio = mask_token_ratio
        self.random_token_ratio = random_token_ratio
        self.group_by_length = group_by_length
        self.num_workers = num_workers
        self.pad_to_multiple_of = pad_to_multiple_of
        self.seed = seed
        self._check_settings()
        self.corpus.check()
        self.tokenizer: Tokenizer | None = None
        self.tokens_dir: Path | None = None
        self.tokenized: TokenizedCorpus | None = None
        self.train_set: BertPretrainingDataset | None = None
        self.val_set: BertPretrainingDataset | None = None

    def _check_settings(self) -> None:
        def require(ok: bool, key: str, rule: str) -> None:
            if not ok:
                value = getattr(self, key.split(".")[-1])
                raise ConfigError(key, f"{key}={value} {rule}")

        require(self.max_seq_len >= 8, "data.max_seq_len", "must be at least 8")
        require(self.batch_size >= 1, "data.batch_size", "must be at least 1")
        require(0 < self.val_fraction < 1, "data.val_fraction", "must be in (0, 1)")
        require(self.val_draws >= 1, "data.val_draws", "must be at least 1")
        require(0 <= self.short_seq_prob <= 1, "data.short_seq_prob", "must be in [0, 1]")
        require(self.num_workers >= 0, "data.num_workers", "must be >= 0")
        require(self.pad_to_multiple_of >= 1, "data.pad_to_multiple_of", "must be at least 1")
        require(0 < self.mlm_probability <= 1, "objective.mlm_probability", "must be in (0, 1]")
        require(0 <= self.mask_token_ratio <= 1, "objective.mask_token_ratio", "must be in [0, 1]")
        require(0 <= self.random_token_ratio <= 1, "objective.random_token_ratio", "must be in [0, 1]")
        require(
            self.mask_token_ratio + self.random_token_ratio <= 1,
            "objective.random_token_ratio",
            f"plus objective.mask_token_ratio={self.mask_token_ratio} must not exceed 1",
        )

    # ----------------------------------------------------------------------------------------------
    # Preparation: cached steps

    def _corpus_dir(self) -> Path:
        return self.cache_dir / f"{self.corpus.name}-{fingerprint(self.corpus.settings())}"

    def _no_text(self) -> ConfigError:
        return ConfigError("data.corpus", f"the {self.corpus.name} corpus holds no text")

    def _prepare_tokenizer(self) -> tuple[Tokenizer, str]:
        """The tokenizer and a key that identifies it (a hash of its JSON)."""
        if self.tokenizer is not None:  # set by restore_tokenizer
            return self.tokenizer, fingerprint(self.tokenizer.to_str())
        if self.tokenizer_settings.path is not None:
            path = Path(self.tokenizer_settings.path)
            log.info("using the tokenizer at %s", path)
            tokenizer = load_tokenizer(path)
            return tokenizer, fingerprint(tokenizer.to_str())
        settings = self.tokenizer_settings.training_settings()
        directory = self._corpus_dir() / f"wordpiece-{fingerprint(settings)}"
        if (directory / "tokenizer.json").is_file():
            log.info("reusing the cached tokenizer at %s", directory)
        else:
            log.info("training a WordPiece tokenizer (%s)", settings)
            sentences = (s for document in self.corpus.unique_documents() for s in document)
            tokenizer = train_wordpiece(sentences, self.tokenizer_settings)
            if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS):
                raise self._no_text()
            with atomic_directory(directory) as scratch:
                save_tokenizer(tokenizer, scratch, {"corpus": self.corpus.settings(), **settings})
            log.info("saved the tokenizer (%d tokens) to %s", tokenizer.get_vocab_size(), directory)
        tokenizer = load_tokenizer(directory / "tokenizer.json")
        return tokenizer, fingerprint(tokenizer.to_str())

    def _prepare_tokens(self, tokenizer: Tokenizer, tokenizer_key: str) -> Path:
        directory = self._corpus_dir() / f"tokens-v{FORMAT_VERSION}-{tokenizer_key}"
        if (directory / "meta.json").is_file():
            log.info("reusing the tokenised corpus at %s", directory)
            return directory
        with atomic_directory(directory) as scratch:
            corpus = TokenizedCorpus.build(self.corpus.unique_documents(), tokenizer, scratch)
            if corpus.n_tokens == 0:  # raised inside the block: nothing is cached
                raise self._no_text()
        log.info(
            "tokenised %d documents, %d sentences, %d tokens into %s",
            corpus.n_documents,
            corpus.n_sentences,
            corpus.n_tokens,
            directory,
        )
        return directory

    def prepare_data(self) -> None:
        """Make (or find) the tokenizer and the tokenised corpus; cheap when both are cached."""
        if self.tokens_dir is not None:
            return
        self.tokenizer, key = self._prepare_tokenizer()
        self.tokens_dir = self._prepare_tokens(self.tokenizer, key)

    @property
    def vocab_size(self) -> int:
        self.prepare_data()
        return self.tokenizer.get_vocab_size()

    # ----------------------------------------------------------------------------------------------
    # Set-up: split, cut, build datasets

    def split_documents(self, n_documents: int) -> tuple[np.ndarray, np.ndarray]:
        """Document indices for training and validation; every document lands in exactly one."""
        in_val = np.random.default_rng(_SPLIT_SEED).random(n_documents) < self.val_fraction
        if not in_val.any():
            in_val[-1] = True
        return np.flatnonzero(~in_val), np.flatnonzero(in_val)

    def _dataset(self, documents: np.ndarray, split: str, seed: int) -> BertPretrainingDataset:
        ids = special_ids(self.tokenizer)
        chunks = build_chunks(
            self.tokenized,
            documents,
            max_tokens=self.max_seq_len - (3 if self.nsp else 2),
            short_seq_prob=self.short_seq_prob,
            min_sentences=2 if self.nsp else 1,
            seed=seed,
        )
        if self.nsp and (len(chunks) == 0 or len(documents) < 2):
            raise ConfigError(
                "objective",
                f"next-sentence prediction needs documents of two or more sentences, and the {split} "
                f"split of the {self.corpus.name} corpus has {len(chunks)} such of {len(documents)} "
                "documents: use objective=mlm, or give a corpus of multi-sentence documents"
                + (" (or raise data.val_fraction)" if split == "validation" else ""),
            )
        if len(chunks) == 0:
            raise ConfigError(
                "data.val_fraction" if split == "validation" else "data.corpus",
                f"the {split} split of the {self.corpus.name} corpus is empty"
                + (": raise data.val_fraction" if split == "validation" else ""),
            )
        return BertPretrainingDataset(
            self.tokenized, documents, chunks, self.max_seq_len, ids.cls, ids.sep, self.nsp, seed
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.prepare_data()
        self.tokenized = TokenizedCorpus.load(self.tokens_dir)
        train_docs, val_docs = self.split_documents(self.tokenized.n_documents)
        self.train_set = self._dataset(train_docs, "training", self.seed)
        self.val_set = self._dataset(val_docs, "validation", self.seed + 1)
        ids = special_ids(self.tokenizer)
        self.collator = MaskedLMCollator(
            pad_id=ids.pad,
            mask_id=ids.mask,
            special_ids=ids.all(),
            vocab_size=self.tokenizer.get_vocab_size(),
            mlm_probability=self.mlm_probability,
            mask_token_ratio=self.mask_token_ratio,
            random_token_ratio=self.random_token_ratio,
            seed=self.seed,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
        log.info(
            "examples: %d for training (%d documents), %d for validation (%d documents)",
            len(self.train_set),
            len(train_docs),
            len(self.val_set),
            len(val_docs),
        )

    def _loader(self, dataset: BertPretrainingDataset, shuffle: bool) -> DataLoader:
        sampler = LengthGroupedSampler(
            len(dataset),
            self.batch_size,
            length_of=dataset.lengths if self.group_by_length else None,
            seed=self.seed,
            shuffle=shuffle,
            draws=self.val_draws,
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    # ----------------------------------------------------------------------------------------------
    # Checkpoints carry the tokenizer, so a checkpoint is usable on its own.

    def restore_tokenizer(self, ckpt_path: str) -> None:
        """Resume with the tokenizer a checkpoint was trained with (training one is not repeatable
        bit for bit: the ``tokenizers`` trainer breaks ties in hash order)."""
        checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=False)
        saved = checkpoint.get(type(self).__qualname__, {}).get("tokenizer")
        if saved is None:
            raise ConfigError(
                "ckpt_path", f"{ckpt_path} holds no tokenizer: is it a checkpoint of this task?"
            )
        self.tokenizer = Tokenizer.from_str(saved)
        special_ids(self.tokenizer, source=f"the tokenizer of {ckpt_path}")
        log.info("resuming with the tokenizer stored in %s", ckpt_path)

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
