"""Shuffled order in which neighbouring examples have similar lengths, so batches carry little padding.

Our samplers shard themselves across data-parallel processes (``ShardedSampler``): every rank draws
the same seeded global order and takes every ``world``-th key of it, starting at its rank. So the
``k``-th batches of all ranks together are the ``k``-th batch of one process with ``world`` times the
batch size, and a run gives the same global batches on any number of processes.

A resumed run starts its epoch after the examples it had already trained on (``skip``, set by
``ResumableLoader`` from the checkpoint), so it sees the rest of the epoch's order, not its head again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler


class ShardedSampler(DistributedSampler):
    """Base of samplers that take their own share of a seeded global order on each process.

    It subclasses ``DistributedSampler`` only so that Lightning sees the sampler as distributed
    already and neither wraps it in a ``DistributedSamplerWrapper`` (whose ``set_epoch`` never reaches
    the sampler inside) nor shards it twice; Lightning calls ``set_epoch`` on it directly. The rank
    and world size are read from ``torch.distributed`` when iterated (the process group exists by
    then), unless given (tests). Each rank gets ``len(order) // world`` keys: at most ``world - 1``
    keys of an epoch are left out, so that every rank runs the same number of batches. ``skip``
    leaves out the first keys of the global order in the next pass only (a resumed epoch).
    """

    def __init__(
        self, seed: int, shuffle: bool, rank: int | None = None, world_size: int | None = None
    ) -> None:
        Sampler.__init__(self)  # not DistributedSampler's: it needs a process group now and a dataset
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0
        self._rank = rank
        self._world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def rank(self) -> int:  # type: ignore[override]
        if self._rank is not None:
            return self._rank
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    @property
    def num_replicas(self) -> int:  # type: ignore[override]
        if self._world_size is not None:
            return self._world_size
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's keys of the global ``order``: every ``world``-th one, from position ``rank``,
        after the ``skip`` keys already trained on (then ``skip`` goes back to 0)."""
        world = self.num_replicas
        end = len(order) - len(order) % world
        order, self.skip = order[min(self.skip, end) : end], 0
        return order[self.rank :: world]


class LengthGroupedSampler(ShardedSampler):
    """Yield keys ``epoch * size + i`` (see ``BertPretrainingDataset``), grouped by length.

    The keys of an epoch (shuffled when ``shuffle``) are cut into groups of ``group_batches``
    batches; each group is sorted by the length ``length_of`` reports for its keys, cut into batches,
    and (when ``shuffle``) the batches of the group are shuffled. ``length_of=None`` only shuffles.
    Without ``shuffle`` (validation) the keys of epochs ``0 .. draws - 1`` are yielded, the same at
    every call. Across processes the groups are cut for the global batch (``batch_size`` x world), so
    each global batch is one slice of the sorted group and its ranks see similar lengths.
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
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(seed, shuffle, rank, world_size)
        self.size = size
        self.batch_size = batch_size
        self.length_of = length_of
        self.group_batches = group_batches
        self.draws = 1 if shuffle else draws

    def __len__(self) -> int:
        return self.size * self.draws // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        yield from self.shard(self.global_order()).tolist()

    def global_order(self) -> np.ndarray:
        """The keys of this epoch for all ranks together, in the order one process would see them."""
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.shuffle:
            keys = rng.permutation(self.size) + self.epoch * self.size
        else:
            keys = np.arange(self.size * self.draws)
        batch_size = self.batch_size * self.num_replicas
        group = batch_size * self.group_batches
        ordered = []
        for start in range(0, len(keys), group):
            chunk = keys[start : start + group]
            if self.length_of is not None:
                chunk = chunk[np.argsort(-self.length_of(chunk), kind="stable")]
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            order = rng.permutation(len(batches)) if self.shuffle else range(len(batches))
            ordered.extend(batches[b] for b in order)
        return np.concatenate(ordered) if ordered else keys


class ShuffledSampler(ShardedSampler):
    """Indices ``0 .. size - 1`` in a seeded random order per epoch (the labeled sets' training order).

    Unlike ``LengthGroupedSampler`` it yields plain indices, not keys that name the epoch too: a
    labeled example reads the same in every epoch.
    """

    def __init__(
        self, size: int, seed: int = 0, rank: int | None = None, world_size: int | None = None
    ) -> None:
        super().__init__(seed, True, rank, world_size)
        self.size = size

    def __len__(self) -> int:
        return self.size // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        yield from self.shard(np.random.default_rng((self.seed, self.epoch)).permutation(self.size)).tolist()
