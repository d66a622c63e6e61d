"""Shuffled order in which neighbouring examples have similar lengths, so batches carry little padding."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    """Yield keys ``epoch * size + i`` (see ``BertPretrainingDataset``), grouped by length.

    The keys of an epoch (shuffled when ``shuffle``) are cut into groups of ``group_batches``
    batches; each group is sorted by the length ``length_of`` reports for its keys, cut into batches,
    and (when ``shuffle``) the batches of the group are shuffled. ``length_of=None`` only shuffles.
    Without ``shuffle`` (validation) the keys of epochs ``0 .. draws - 1`` are yielded, the same at
    every call.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        length_of: Callable[[np.ndarray], np.ndarray] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        group_batches: int = 50,
        draws: int = 1,
    ) -> None:
        self.size = size
        self.batch_size = batch_size
        self.length_of = length_of
        self.seed = seed
        self.shuffle = shuffle
        self.group_batches = group_batches
        self.draws = 1 if shuffle else draws
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size * self.draws

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.shuffle:
            keys = rng.permutation(self.size) + self.epoch * self.size
        else:
            keys = np.arange(self.size * self.draws)
        group = self.batch_size * self.group_batches
        for start in range(0, len(keys), group):
            chunk = keys[start : start + group]
            if self.length_of is not None:
                chunk = chunk[np.argsort(-self.length_of(chunk), kind="stable")]
            batches = [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            order = rng.permutation(len(batches)) if self.shuffle else range(len(batches))
            for b in order:
                yield from batches[b].tolist()
