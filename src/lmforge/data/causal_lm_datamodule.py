"""The LightningDataModule for causal-LM pretraining: token shards -> packed stream -> full blocks."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from lmforge.data.corpus.base import Corpus
from lmforge.data.corpus_datamodule import CorpusDataModule
from lmforge.data.packing import BlockSampler, PackedBlocks, PackedStream
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id

log = logging.getLogger(__name__)


class CausalLMDataModule(CorpusDataModule):
    """Batches of ``max_seq_len`` tokens with next-token targets, no padding.

    The training documents are joined (in a seeded random order, so one source does not fill a run
    of blocks) with ``<|endoftext|>`` after each, and cut into blocks whose grid shifts every epoch;
    validation reads its own documents' stream in fixed blocks.
    """

    def __init__(self, corpus: Corpus, tokenizer: dict[str, Any], cache_dir: str, **shared: Any) -> None:
        super().__init__(corpus, {**tokenizer, "kind": tokenizer.get("kind", "bpe")}, cache_dir, **shared)
        self.train_set: PackedBlocks | None = None
        self.val_set: PackedBlocks | None = None

    def _blocks(self, documents: np.ndarray, split: str) -> PackedBlocks:
        stream = PackedStream(self.tokenized, documents, end_of_text_id(self.tokenizer))
        blocks = PackedBlocks(stream, self.max_seq_len)
        if len(blocks) == 0:
            fix = "raise data.val_fraction or lower" if split == "validation" else "give more text or lower"
            raise ConfigError(
                "data.max_seq_len",
                f"the {split} split of the {self.corpus.name} corpus holds {len(stream)} tokens, not one "
                f"block of data.max_seq_len={self.max_seq_len} + 1: {fix} data.max_seq_len",
            )
        return blocks

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.load_tokens()
        order = np.random.default_rng(self.seed).permutation(self.train_documents)
        self.train_set = self._blocks(order, "training")
        self.val_set = self._blocks(self.val_documents, "validation")
        # the grid's offset can cost an epoch one block
        self.require_full_batch(len(self.train_set) - 1, f"{self.max_seq_len}-token blocks at worst")
        log.info(
            "blocks of %d tokens: %d for training (%d documents), %d for validation (%d documents)",
            self.max_seq_len,
            len(self.train_set),
            len(self.train_documents),
            len(self.val_set),
            len(self.val_documents),
        )

    def _loader(self, blocks: PackedBlocks, shuffle: bool) -> DataLoader:
        sampler = BlockSampler(len(blocks.stream), blocks.block_len, shuffle=shuffle, seed=self.seed)
        return self.loader(blocks, sampler, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
