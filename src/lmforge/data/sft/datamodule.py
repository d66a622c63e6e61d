"""The LightningDataModule of instruction tuning: pairs -> fixed splits -> tokenizer -> batches.

``prepare_data`` reads the pairs, draws the splits not given as files (fixed by ``split_seed``, never
by the run's seed; pairs with the same prompt land in one split) and trains or loads the tokenizer
(cached under ``cache_dir``; a run from ``model.init_from`` reads text with that model's tokenizer).
``setup`` encodes every split once (``PairEncoder``). Training batches are single pairs padded to
the longest of the batch, or with ``pack`` rows of ``max_seq_len`` tokens holding several pairs kept
apart; validation and test batches are single pairs, and carry the texts that evaluation generates
from and compares with. Checkpoints carry the tokenizer.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Dataset

from lmforge.data.cache import fingerprint
from lmforge.data.labeled.splits import grouped_split
from lmforge.data.resumable import ResumableLoader
from lmforge.data.sampler import ShuffledSampler
from lmforge.data.sft.encoding import EncodedPairs, PackedPairs, PairCollator, PairEncoder
from lmforge.data.sft.pairs import InstructionFiles, InstructionPair
from lmforge.data.split_datamodule import SplitDataModule
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id
from lmforge.objectives.settings import fill_template

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class InstructionDataModule(SplitDataModule):
    """Batches of prompt/response pairs for a decoder, the loss on the responses (``PairEncoder``).

    ``template`` puts each prompt in the text the model reads (``objective.template``); ``pack``
    fills each training row with several pairs.
    """

    SOURCE_KEY = "data.pairs"
    CHECKPOINT_OF = "an objective=sft run"

    def __init__(
        self,
        pairs: InstructionFiles,
        tokenizer: dict[str, Any],
        cache_dir: str,
        template: str,
        max_seq_len: int = 128,
        batch_size: int = 16,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        pack: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            pairs,
            {**tokenizer, "kind": tokenizer.get("kind", "bpe")},
            cache_dir,
            max_seq_len,
            batch_size,
            val_fraction,
            test_fraction,
            split_seed,
            num_workers,
            seed,
        )
        self.template = template
        self.pack = pack
        self._check_settings()
        self.source.check()
        self.splits: dict[str, list[InstructionPair]] | None = None
        self.datasets: dict[str, EncodedPairs] = {}
        self.packed: PackedPairs | None = None

    def _check_settings(self) -> None:
        super()._check_settings()
        self.require(isinstance(self.pack, bool), "data.pack", "must be true or false")

    # ----------------------------------------------------------------------------------------------
    # Preparation: splits and tokenizer

    def prepare_data(self) -> None:
        """Read and split the pairs, make (or find) the tokenizer; once."""
        if self.splits is not None:
            return
        splits = self._draw_splits()
        texts = (text for pair in splits["train"] for text in (pair.prompt, pair.response))
        folder = self.cache_dir / f"sft-{self.source.name}-{fingerprint(self.source.settings())}"
        split = {
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.split_seed,
        }
        self.tokenizer = self.prepare_tokenizer(folder, texts, {"split": split}, self.source.settings())
        self.splits = splits  # last: a step that failed is done again by the next call

    def _draw_splits(self) -> dict[str, list[InstructionPair]]:
        given = self.source.given_splits()
        read = self.source.read("train")
        pool = list(dict.fromkeys(read))  # repeated pairs once
        if len(pool) < len(read):
            log.info(
                "%s: left out %d repeated pairs of %d", self.source.name, len(read) - len(pool), len(read)
            )
        fractions = self.held_out(given)
        indices = grouped_split([pair.prompt for pair in pool], fractions, self.split_seed)
        splits = {split: [pool[i] for i in index] for split, index in indices.items()}
        for split in given:
            splits[split] = self.source.read(split)
        return splits

    # ----------------------------------------------------------------------------------------------
    # A tokenizer from elsewhere: a pretraining checkpoint, a checkpoint of this DataModule

    def use_tokenizer(
        self,
        tokenizer: Tokenizer,
        source: str = "the pretrained model's tokenizer",
        key: str = "model.init_from",
    ) -> None:
        super().use_tokenizer(tokenizer, source, key)
        self.packed = None  # packed with another tokenizer, if any

    # ----------------------------------------------------------------------------------------------
    # Set-up: encode each split once; loaders

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        eot = end_of_text_id(self.tokenizer)
        encoder = PairEncoder(
            self.tokenizer, lambda prompt: fill_template(self.template, prompt), eot, self.max_seq_len
        )
        for split, pairs in self.splits.items():
            if split in self.datasets:
                continue
            encoded, counts = encoder.encode(pairs)
            if len(encoded) == 0:
                raise ConfigError(
                    "data.max_seq_len",
                    f"every prompt of the {split} split ({self.source.describe(split)}) fills "
                    f"data.max_seq_len={self.max_seq_len} tokens in the template: raise data.max_seq_len",
                )
            self.datasets[split] = encoded
            log.info(self._describe(split, encoded, counts))
        if self.pack and self.packed is None:
            self.packed = PackedPairs(self.datasets["train"], self.max_seq_len, eot, self.seed)
            lengths = self.datasets["train"].lengths() - 1
            log.info(
                "packed %d training pairs into %d rows of %d tokens (%.1f %% of them real tokens)",
                len(lengths),
                len(self.packed),
                self.max_seq_len,
                100 * lengths.sum() / (len(self.packed) * self.max_seq_len),
            )
        rows = len(self.packed) if self.packed is not None else len(self.datasets["train"])
        if rows < self.batch_size:
            what = "packed rows" if self.packed is not None else "pairs"
            raise ConfigError(
                "data.batch_size",
                f"the training split of {self.source.describe('train')} makes {rows} {what}, fewer than "
                f"data.batch_size={self.batch_size}: lower data.batch_size, or give more pairs",
            )

    def _describe(self, split: str, encoded: EncodedPairs, counts: dict[str, int]) -> str:
        lengths = encoded.lengths()
        responses = lengths - encoded.prompt_lengths
        left_out = (
            f", {counts['left_out']} left out (prompt alone fills the block)" if counts["left_out"] else ""
        )
        return (
            f"{self.source.name} {split}: {len(encoded):,} pairs, {lengths.mean():.1f} tokens on average "
            f"({responses.mean():.1f} of response and end-of-text), {counts['cut']} cut at "
            f"data.max_seq_len={self.max_seq_len}{left_out}"
        )

    def loader(self, split: str) -> DataLoader:
        """Training shuffles (seeded by ``seed`` and the epoch, resumable mid-epoch) and drops a last
        short batch; evaluation keeps order and carries the texts."""
        pad = end_of_text_id(self.tokenizer)
        settings: dict[str, Any] = dict(
            batch_size=self.batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )
        if split == "train":
            dataset: Dataset = self.packed if self.pack else self.dataset("train")
            collate = None if self.pack else PairCollator(pad)
            sampler = ShuffledSampler(len(dataset), seed=self.seed)
            return ResumableLoader(
                dataset, sampler=sampler, seed=self.seed, drop_last=True, collate_fn=collate, **settings
            )
        generator = torch.Generator().manual_seed(self.seed)  # not the one dropout draws from
        return DataLoader(
            self.dataset(split), generator=generator, collate_fn=PairCollator(pad, texts=True), **settings
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
