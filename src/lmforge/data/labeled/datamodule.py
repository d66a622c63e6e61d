"""The LightningDataModule of fine-tuning: a labeled set -> fixed splits -> tokenizer -> padded batches.

``prepare_data`` reads the set, draws the splits (fixed by ``split_seed``, never by the run's seed),
numbers the labels and trains or loads the tokenizer (cached under ``cache_dir``, keyed by the set and
the tokenizer settings). ``setup`` encodes every split once. Checkpoints carry the label names and the
tokenizer (``state_dict``), and ``restore(ckpt_path)`` reads them back, so evaluation rebuilds the
same label numbers and token ids.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from lmforge.data.cache import fingerprint
from lmforge.data.labeled.encoding import ClassificationCollator, ClassificationEncoder, EncodedSplit
from lmforge.data.labeled.examples import LabeledExample, deduplicate
from lmforge.data.labeled.source import LabeledSource
from lmforge.data.labeled.splits import few_shot, grouped_split, stratified_split
from lmforge.data.resumable import ResumableLoader
from lmforge.data.sampler import ShuffledSampler
from lmforge.data.split_datamodule import SplitDataModule
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

SHOWN_LABELS = 8  # the split log line lists this many of the most frequent labels


def label_order(label: str) -> tuple[int, float, str]:
    """Sort key of label names: numbers by value (``"2"`` before ``"10"``), then other names."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


class ClassificationDataModule(SplitDataModule):
    """Batches of a labeled set for a classifier.

    Batches are dicts of int64 tensors, right-padded to the longest example of the batch:
    ``input_ids``, ``attention_mask`` (1 on tokens, 0 on padding), ``labels`` (indices into
    ``label_names``) and, for WordPiece (BERT), ``token_type_ids`` (0 for text A, 1 for text B).
    """

    def __init__(
        self,
        source: LabeledSource,
        tokenizer: dict[str, Any],
        cache_dir: str,
        max_seq_len: int = 128,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        shots_per_class: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            source,
            tokenizer,
            cache_dir,
            max_seq_len,
            batch_size,
            val_fraction,
            test_fraction,
            split_seed,
            num_workers,
            seed,
        )
        self.shots_per_class = shots_per_class
        self._check_settings()
        self.source.check()
        self.splits: dict[str, list[LabeledExample]] | None = None
        self.datasets: dict[str, EncodedSplit] = {}
        self.collator: ClassificationCollator | None = None
        self._label_names: list[str] | None = None
        self._labels_from: str | None = None  # the checkpoint the label names were restored from

    def _check_settings(self) -> None:
        super()._check_settings()
        shots = self.shots_per_class
        self.require(
            shots is None or (isinstance(shots, int) and not isinstance(shots, bool) and shots >= 1),
            "data.shots_per_class",
            "must be a positive number of training examples per label (null: the whole training split)",
        )

    # ----------------------------------------------------------------------------------------------
    # Preparation: splits, label names, tokenizer

    def prepare_data(self) -> None:
        """Read and split the set, number the labels, make (or find) the tokenizer; once."""
        if self.splits is not None:
            return
        splits = self._draw_splits()
        self._assign_labels(splits)
        self.tokenizer = self._prepare_tokenizer(splits["train"])
        self.splits = splits  # last: a step that failed is done again by the next call

    def _draw_splits(self) -> dict[str, list[LabeledExample]]:
        given = self.source.given_splits()
        read = self.source.read()
        pool = deduplicate(read)
        if len(pool) < len(read):
            log.info(
                "%s: left out %d repeated texts of %d", self.source.name, len(read) - len(pool), len(read)
            )
        fractions = self.held_out(given)
        if any(example.group is not None for example in pool):
            indices = grouped_split([str(example.group) for example in pool], fractions, self.split_seed)
        else:
            indices = stratified_split([example.label for example in pool], fractions, self.split_seed)
        splits = {split: [pool[i] for i in index] for split, index in indices.items()}
        for split in given:
            splits[split] = self.source.read_split(split)
        if self.shots_per_class is not None:
            splits["train"] = self._few_shot(splits["train"])
        if len(splits["train"]) < self.batch_size:
            shots = f" (data.shots_per_class={self.shots_per_class})" if self.shots_per_class else ""
            raise ConfigError(
                "data.batch_size",
                f"the training split of {self.source.describe('train')} holds {len(splits['train'])} "
                f"examples{shots}, fewer than data.batch_size={self.batch_size}: lower data.batch_size, or "
                "give more examples",
            )
        return splits

    def _few_shot(self, train: list[LabeledExample]) -> list[LabeledExample]:
        """``shots_per_class`` training examples of each label, drawn with ``split_seed``; the rest unused."""
        kept = [
            train[i]
            for i in few_shot([example.label for example in train], self.shots_per_class, self.split_seed)
        ]
        log.info(
            "few-shot: %d training examples of each label (%d of %d), drawn with data.split_seed=%d",
            self.shots_per_class,
            len(kept),
            len(train),
            self.split_seed,
        )
        return kept

    def _assign_labels(self, splits: dict[str, list[LabeledExample]]) -> None:
        """Label names from the training split (or a checkpoint); a label outside them is an error."""
        train_labels = {example.label for example in splits["train"]}
        if self._labels_from is None:
            if len(train_labels) < 2:
                raise ConfigError(
                    "data.source",
                    f"the training split of {self.source.describe('train')} holds one label only "
                    f"({', '.join(train_labels)}): a classifier needs two or more",
                )
            self._label_names = sorted(train_labels, key=label_order)
        known = set(self._label_names)
        for split, examples in splits.items():
            unknown = sorted({example.label for example in examples} - known, key=label_order)
            if not unknown:
                continue
            where = f"the {split} split ({self.source.describe(split)})"
            if self._labels_from is not None:
                raise ConfigError(
                    "ckpt_path",
                    f"{where} has the label {unknown[0]!r}, which the model of {self._labels_from} was not "
                    f"trained on (its labels: {', '.join(self._label_names)})",
                )
            key = f"data.source.{split}_path" if split in self.source.given_splits() else "data.split_seed"
            raise ConfigError(
                key,
                f"{where} has the label {unknown[0]!r}, which the training split "
                f"({self.source.describe('train')}) never has: remove those rows or add training examples "
                "of that label",
            )

    def _prepare_tokenizer(self, train: Sequence[LabeledExample]) -> Tokenizer:
        """The tokenizer given by ``use_tokenizer`` / ``restore``, by path, cached, or trained now."""
        split = {
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.split_seed,
            **({"shots_per_class": self.shots_per_class} if self.shots_per_class is not None else {}),
        }
        texts = (text for example in train for text in (example.text, example.text_pair) if text is not None)
        folder = self.cache_dir / f"{self.source.name}-{fingerprint(self.source.settings())}"
        return self.prepare_tokenizer(folder, texts, {"split": split}, {"source": self.source.settings()})

    @property
    def label_names(self) -> list[str]:
        """The label strings, index i being class i: the training split's, sorted (numbers by value)."""
        if self._label_names is None:
            self.prepare_data()
        return list(self._label_names)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    # ----------------------------------------------------------------------------------------------
    # A tokenizer and label names from elsewhere: a pretraining checkpoint, a fine-tuned one

    def restore(self, checkpoint: dict[str, Any], ckpt_path: str) -> None:
        """Take the label names and the tokenizer stored in a checkpoint of this DataModule (read from
        ``ckpt_path``, weights left out)."""
        state = checkpoint.get(type(self).__qualname__) or {}
        if "label_names" not in state or "tokenizer" not in state:
            raise ConfigError(
                "ckpt_path",
                f"{ckpt_path} holds no label names and tokenizer: is it a checkpoint of a fine-tuning run "
                "(data=trec, data=csv, ...)?",
            )
        self.use_tokenizer(
            Tokenizer.from_str(state["tokenizer"]), f"the tokenizer of {ckpt_path}", "ckpt_path"
        )
        self._restore_labels(state["label_names"], str(ckpt_path))
        log.info("using the %d label names and the tokenizer stored in %s", self.num_labels, ckpt_path)

    def _restore_labels(self, names: Sequence[str], origin: str) -> None:
        self._label_names, self._labels_from = list(names), origin
        if self.splits is not None:
            self._assign_labels(self.splits)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._label_names is not None:
            state["label_names"] = list(self._label_names)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming: adopt the checkpoint's tokenizer and label names, or check they equal this run's."""
        saved = state_dict.get("tokenizer")
        if saved is not None:
            if self.tokenizer is None:
                self.use_tokenizer(Tokenizer.from_str(saved), "the checkpoint's tokenizer", "ckpt_path")
            elif saved != self.tokenizer.to_str():
                raise ConfigError(
                    "ckpt_path",
                    "the checkpoint was trained with another tokenizer than this run's: resume with the same "
                    "data and data.tokenizer settings",
                )
        names = state_dict.get("label_names")
        if names is not None:
            if self._label_names is None:
                self._restore_labels(names, "the checkpoint")
            elif list(names) != self._label_names:
                raise ConfigError(
                    "ckpt_path",
                    f"the checkpoint's labels ({', '.join(names)}) differ from this run's "
                    f"({', '.join(self._label_names)}): resume with the same data",
                )

    # ----------------------------------------------------------------------------------------------
    # Set-up: encode each split once; loaders

    def make_encoder(self) -> ClassificationEncoder:
        """What turns examples into token ids (prompt templates bring their own)."""
        return ClassificationEncoder(self.tokenizer, self.kind, self.max_seq_len)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        encoder = self.make_encoder()
        self.collator = ClassificationCollator(encoder.pad_id)
        index = {name: i for i, name in enumerate(self._label_names)}
        for split, examples in self.splits.items():
            if split in self.datasets:
                continue
            labels = np.array([index[example.label] for example in examples], dtype=np.int64)
            self.datasets[split] = encoder.encode(examples, labels)
            log.info(self._describe_split(split, examples, self.datasets[split]))

    def _describe_split(self, split: str, examples: Sequence[LabeledExample], encoded: EncodedSplit) -> str:
        counts = Counter(example.label for example in examples)
        shown = ", ".join(f"{label} {n / len(examples):.1%}" for label, n in counts.most_common(SHOWN_LABELS))
        more = f", {len(counts) - SHOWN_LABELS} more" if len(counts) > SHOWN_LABELS else ""
        lengths = encoded.lengths()
        return (
            f"{self.source.name} {split}: {len(examples):,} examples, {len(counts)} labels ({shown}{more}); "
            f"{lengths.mean():.1f} tokens on average, {(lengths >= self.max_seq_len).mean():.1%} at the "
            f"{self.max_seq_len}-token limit (cut)"
        )

    def loader(self, split: str) -> DataLoader:
        """Training shuffles (seeded by ``seed`` and the epoch, resumable mid-epoch: ``ResumableLoader``)
        and drops a last short batch; evaluation keeps order."""
        dataset = self.dataset(split)
        settings = dict(
            batch_size=self.batch_size,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        if split == "train":
            sampler = ShuffledSampler(len(dataset), seed=self.seed)
            return ResumableLoader(dataset, sampler=sampler, seed=self.seed, drop_last=True, **settings)
        # its own generator: making the iterator would draw a seed from the one dropout uses
        return DataLoader(dataset, generator=torch.Generator().manual_seed(self.seed), **settings)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
