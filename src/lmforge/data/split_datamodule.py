"""What the DataModules of examples (labeled sets, instruction pairs) share over ``TextDataModule``: a
source of examples, held-out splits drawn from it with ``split_seed`` where the source gives none, and
each split encoded once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tokenizers import Tokenizer

from lmforge.data.text_datamodule import TextDataModule
from lmforge.errors import ConfigError


class SplitDataModule(TextDataModule):
    """A ``source`` (``check``, ``given_splits``, ``name``) split into train / val / test.

    ``val_fraction`` and ``test_fraction`` of the pool are held out, the rest trains; a split the
    source gives as a file is read, not drawn. Subclasses fill ``self.datasets`` in ``setup``.
    """

    SOURCE_KEY: ClassVar[str] = "data.source"  # where the source's settings sit in the config

    def __init__(
        self,
        source: Any,
        tokenizer: dict[str, Any],
        cache_dir: str,
        max_seq_len: int,
        batch_size: int,
        val_fraction: float,
        test_fraction: float,
        split_seed: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__(tokenizer, cache_dir, max_seq_len, batch_size, val_fraction, num_workers, seed)
        self.source = source
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.datasets: dict[str, Any] = {}

    def _check_settings(self) -> None:
        super()._check_settings()
        self.require(0 <= self.test_fraction < 1, "data.test_fraction", "must be in [0, 1)")
        self.require(
            self.val_fraction + self.test_fraction < 1,
            "data.test_fraction",
            f"plus data.val_fraction={self.val_fraction} must be below 1 (the rest is the training split)",
        )

    def held_out(self, given: Sequence[str]) -> dict[str, float]:
        """The share of the pool each held-out split takes, for the splits not ``given`` as files."""
        return {
            split: fraction
            for split, fraction in (("val", self.val_fraction), ("test", self.test_fraction))
            if split not in given and fraction > 0
        }

    @property
    def vocab_size(self) -> int:
        if self.tokenizer is None:
            self.prepare_data()
        return self.tokenizer.get_vocab_size()

    def use_tokenizer(
        self,
        tokenizer: Tokenizer,
        source: str = "the pretrained model's tokenizer",
        key: str = "model.init_from",
    ) -> None:
        super().use_tokenizer(tokenizer, source, key)
        self.datasets = {}  # encoded with another tokenizer, if any

    def dataset(self, split: str) -> Any:
        """The encoded ``split``, set up on first use."""
        if split not in self.datasets:
            self.setup()
        if split not in self.datasets:
            raise ConfigError(
                "data.test_fraction",
                f"there is no {split} split: set data.test_fraction above 0 or give "
                f"{self.SOURCE_KEY}.test_path",
            )
        return self.datasets[split]
