"""The LightningDataModule for BERT pretraining: token shards -> sentence runs -> masked batches."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from lmforge.data.bert_dataset import BertPretrainingDataset, build_chunks
from lmforge.data.corpus.base import Corpus
from lmforge.data.corpus_datamodule import CorpusDataModule
from lmforge.data.masking import MaskedLMCollator
from lmforge.data.sampler import LengthGroupedSampler
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import special_ids

log = logging.getLogger(__name__)


class MaskedLMDataModule(CorpusDataModule):
    """Masked-LM (+ next-sentence) batches from any ``Corpus``.

    ``setup`` splits documents into train and validation (no document in both) and cuts them into
    runs of whole sentences; each draw pairs and masks afresh (``BertPretrainingDataset``).
    """

    def __init__(
        self,
        corpus: Corpus,
        tokenizer: dict[str, Any],
        cache_dir: str,
        val_draws: int = 1,
        short_seq_prob: float = 0.1,
        nsp: bool = True,
        mlm_probability: float = 0.15,
        mask_token_ratio: float = 0.8,
        random_token_ratio: float = 0.1,
        group_by_length: bool = True,
        pad_to_multiple_of: int = 8,
        **shared: Any,
    ) -> None:
        """``shared``: the settings of ``CorpusDataModule`` (sequence length, batch size, split, ...)."""
        self.val_draws = val_draws
        self.short_seq_prob = short_seq_prob
        self.nsp = nsp
        self.mlm_probability = mlm_probability
        self.mask_token_ratio = mask_token_ratio
        self.random_token_ratio = random_token_ratio
        self.group_by_length = group_by_length
        self.pad_to_multiple_of = pad_to_multiple_of
        super().__init__(corpus, {"kind": "wordpiece", **tokenizer}, cache_dir, **shared)
        self.train_set: BertPretrainingDataset | None = None
        self.val_set: BertPretrainingDataset | None = None

    def _check_settings(self) -> None:
        super()._check_settings()
        require = self.require
        require(
            self.tokenizer_settings.kind == "wordpiece", "data.tokenizer.kind", "must be wordpiece for MLM"
        )
        require(self.val_draws >= 1, "data.val_draws", "must be at least 1")
        require(0 <= self.short_seq_prob <= 1, "data.short_seq_prob", "must be in [0, 1]")
        require(self.pad_to_multiple_of >= 1, "data.pad_to_multiple_of", "must be at least 1")
        require(0 < self.mlm_probability <= 1, "objective.mlm_probability", "must be in (0, 1]")
        require(0 <= self.mask_token_ratio <= 1, "objective.mask_token_ratio", "must be in [0, 1]")
        require(0 <= self.random_token_ratio <= 1, "objective.random_token_ratio", "must be in [0, 1]")
        require(
            self.mask_token_ratio + self.random_token_ratio <= 1,
            "objective.random_token_ratio",
            f"plus objective.mask_token_ratio={self.mask_token_ratio} must not exceed 1",
        )

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
        self.load_tokens()
        self.train_set = self._dataset(self.train_documents, "training", self.seed)
        self.val_set = self._dataset(self.val_documents, "validation", self.seed + 1)
        self.require_full_batch(len(self.train_set), "runs of sentences")
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
            len(self.train_documents),
            len(self.val_set),
            len(self.val_documents),
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
        return self.loader(dataset, sampler, shuffle, collate_fn=self.collator)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
