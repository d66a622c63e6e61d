"""What every pretraining DataModule shares: corpus -> tokenizer -> token shards -> train/val split.

``prepare_data`` trains or loads the tokenizer and tokenises the corpus into ``cache_dir``, each step
keyed by its inputs and reused when they have not changed (``lmforge prepare`` runs
it alone). Subclasses turn the shards into batches for their objective.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from torch.utils.data import Dataset

from lmforge.data.cache import atomic_directory, fingerprint
from lmforge.data.corpus.base import Corpus
from lmforge.data.resumable import ResumableLoader
from lmforge.data.sampler import ShardedSampler
from lmforge.data.text_datamodule import TextDataModule
from lmforge.data.tokenized import DEFAULT_SHARD_TOKENS, FORMAT_VERSION, TokenizedCorpus
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import load_tokenizer, save_tokenizer

log = logging.getLogger(__name__)

_SPLIT_SEED = 0  # the train/val split depends on the corpus only, never on the run's seed


class CorpusDataModule(TextDataModule):
    """Shared settings and preparation; ``setup`` leaves ``tokenized`` and the two document lists."""

    def __init__(
        self,
        corpus: Corpus,
        tokenizer: dict[str, Any],
        cache_dir: str,
        max_seq_len: int = 128,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
    ) -> None:
        super().__init__(tokenizer, cache_dir, max_seq_len, batch_size, val_fraction, num_workers, seed)
        self.corpus = corpus
        self.shard_tokens = shard_tokens
        self._check_settings()
        self.corpus.check()
        self.tokens_dir: Path | None = None
        self.tokenized: TokenizedCorpus | None = None
        self.train_documents: np.ndarray | None = None
        self.val_documents: np.ndarray | None = None

    def _check_settings(self) -> None:
        super()._check_settings()
        self.require(self.shard_tokens >= 1, "data.shard_tokens", "must be at least 1")

    # ----------------------------------------------------------------------------------------------
    # Preparation: cached steps

    def _corpus_dir(self) -> Path:
        return self.cache_dir / f"{self.corpus.name}-{fingerprint(self.corpus.settings())}"

    def no_text(self) -> ConfigError:
        return ConfigError("data.corpus", f"the {self.corpus.name} corpus holds no text")

    def _prepare_tokenizer(self, corpus_dir: Path) -> Tokenizer:
        """The tokenizer restored from a checkpoint, given by path, cached, or trained now."""
        kind = self.tokenizer_settings.kind
        if self.tokenizer is not None:  # set by restore or use_tokenizer
            return self.tokenizer
        if self.tokenizer_settings.path is not None:
            path = Path(self.tokenizer_settings.path)
            log.info("using the tokenizer at %s", path)
            return load_tokenizer(path, kind)
        settings = self.tokenizer_settings.training_settings()
        directory = corpus_dir / f"{kind}-{fingerprint(settings)}"
        if (directory / "tokenizer.json").is_file():
            log.info("reusing the cached tokenizer at %s", directory)
        else:
            log.info("training a %s tokenizer (%s)", kind, settings)
            sentences = (s for document in self.corpus.unique_documents() for s in document)
            tokenizer = self.tokenizer_settings.train(sentences)
            if tokenizer.get_vocab_size() <= self.tokenizer_settings.base_size:
                raise self.no_text()
            with atomic_directory(directory) as scratch:
                save_tokenizer(tokenizer, scratch, {"corpus": self.corpus.settings(), **settings})
            log.info("saved the tokenizer (%d tokens) to %s", tokenizer.get_vocab_size(), directory)
        return load_tokenizer(directory / "tokenizer.json", kind)

    def _prepare_tokens(self, corpus_dir: Path, tokenizer: Tokenizer) -> Path:
        """Token shards keyed by the tokenizer itself (a hash of its JSON), not by how it was made."""
        directory = corpus_dir / f"tokens-v{FORMAT_VERSION}-{fingerprint(tokenizer.to_str())}"
        if (directory / "meta.json").is_file():
            log.info("reusing the token shards at %s", directory)
            return directory
        with atomic_directory(directory) as scratch:
            corpus = TokenizedCorpus.build(
                self.corpus.unique_documents(), tokenizer, scratch, self.shard_tokens
            )
            if corpus.n_tokens == 0:  # raised inside the block: nothing is cached
                raise self.no_text()
            shards = len(corpus.shards)
        log.info(
            "tokenised %d documents, %d sentences, %d tokens into %d shard(s) at %s",
            corpus.n_documents,
            corpus.n_sentences,
            corpus.n_tokens,
            shards,
            directory,
        )
        return directory

    def prepare_data(self) -> None:
        """Make (or find) the tokenizer and the token shards; cheap when both are cached."""
        if self.tokens_dir is not None:
            return
        corpus_dir = self._corpus_dir()  # hashes the corpus settings (file sizes and times): once
        self.tokenizer = self._prepare_tokenizer(corpus_dir)
        self.tokens_dir = self._prepare_tokens(corpus_dir, self.tokenizer)

    @property
    def vocab_size(self) -> int:
        self.prepare_data()
        return self.tokenizer.get_vocab_size()

    # ----------------------------------------------------------------------------------------------
    # Set-up: load the shards and split documents

    def split_documents(self, n_documents: int) -> tuple[np.ndarray, np.ndarray]:
        """Document indices for training and validation; every document lands in exactly one."""
        in_val = np.random.default_rng(_SPLIT_SEED).random(n_documents) < self.val_fraction
        if not in_val.any():
            in_val[-1] = True
        return np.flatnonzero(~in_val), np.flatnonzero(in_val)

    def load_tokens(self) -> None:
        """Prepare if needed, then map the shards and split their documents."""
        self.prepare_data()
        self.tokenized = TokenizedCorpus.load(self.tokens_dir)
        self.train_documents, self.val_documents = self.split_documents(self.tokenized.n_documents)

    def require_full_batch(self, n_examples: int, what: str) -> None:
        """Training drops a last short batch, so fewer examples than ``batch_size`` would train nothing."""
        if n_examples < self.batch_size:
            raise ConfigError(
                "data.batch_size",
                f"the training split of the {self.corpus.name} corpus holds {n_examples} {what}, fewer than "
                f"data.batch_size={self.batch_size}: lower data.batch_size (or data.max_seq_len), or give "
                "more text",
            )

    def loader(
        self, dataset: Dataset, sampler: ShardedSampler, shuffle: bool, collate_fn: Callable | None = None
    ) -> ResumableLoader:
        """Batches of ``dataset`` in ``sampler``'s order; training (``shuffle``) drops a last short batch."""
        return ResumableLoader(
            dataset,
            sampler=sampler,
            seed=self.seed,
            batch_size=self.batch_size,
            collate_fn=collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle,
        )
