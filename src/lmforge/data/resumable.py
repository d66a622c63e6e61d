"""A DataLoader that a checkpoint remembers the place of, so a run resumed mid-epoch goes on from there.

Lightning's fit loop keeps the ``state_dict`` of every training loader that has one in the checkpoint
(``loops.fit_loop.state_dict.combined_loader``) and gives it back to ``load_state_dict`` before the
resumed run draws its first batch. Without it the resumed run would start the epoch's order again and
train on its first batches twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from lmforge.data.sampler import ShardedSampler

log = logging.getLogger(__name__)


class ResumableLoader(DataLoader):
    """Batches in the order of a ``ShardedSampler``; its state is the epoch and how far into it the run is.

    The place is counted in examples of the epoch's global order (all processes together) handed out
    as batches, so a run resumed on another number of processes still starts at the same example of
    that order (``LengthGroupedSampler`` cuts its order for the global batch, so there the order
    itself changes with the number of processes: the run warns). The place is set when a pass
    starts, that is at its first batch, after Lightning has called ``set_epoch``: a place saved for
    an epoch that had ended is not applied to the next one.

    The loader has its own random generator, seeded with ``seed``: torch draws the workers' base seed
    from it (once, the workers persist) rather than from the global torch generator, which dropout
    uses, so loading data leaves the training's random numbers alone, and the workers get the same
    seeds in a resumed run. Nothing in a worker draws from them anyway: masking, pairing and the
    blocks' offsets draw from generators seeded by the example's key.

    Give ``sampler=`` by keyword: for ``trainer.overfit_batches`` Lightning builds the loader again
    with ``sampler=SequentialSampler(...)``, and then it is a plain loader (``placed`` is False).
    """

    def __init__(self, dataset: Dataset, sampler: ShardedSampler, seed: int, **settings: Any) -> None:
        super().__init__(dataset, sampler=sampler, generator=torch.Generator().manual_seed(seed), **settings)
        self.epoch = 0
        self.done = 0  # examples of this epoch's global order handed out, by all processes together
        self._resume_at: tuple[int, int] | None = None  # (epoch, examples done) read from a checkpoint

    @property
    def placed(self) -> bool:
        """False when Lightning swapped in a ``SequentialSampler`` (``trainer.overfit_batches``): the
        same few batches every epoch, no place to keep."""
        return isinstance(self.sampler, ShardedSampler)

    def __iter__(self) -> Iterator[Any]:
        return self._placed_pass() if self.placed else super().__iter__()

    def _placed_pass(self) -> Iterator[Any]:
        sampler = self.sampler
        self.epoch, self.done = sampler.epoch, 0
        if self._resume_at is not None and self._resume_at[0] == sampler.epoch:
            self.done = sampler.skip = self._resume_at[1]
        self._resume_at = None
        per_batch = self.batch_size * sampler.num_replicas
        for batch in super().__iter__():
            self.done += per_batch
            yield batch

    def state_dict(self) -> dict[str, int]:
        if not self.placed:
            return {}
        return {"epoch": self.epoch, "examples": self.done, "processes": self.sampler.num_replicas}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if not state_dict or not self.placed:
            return
        epoch, examples, processes = state_dict["epoch"], state_dict["examples"], state_dict["processes"]
        self._resume_at = (epoch, examples)
        log.info("resuming epoch %d after its first %d examples", epoch, examples)
        if processes != self.sampler.num_replicas:
            rank_zero_warn(
                f"the checkpoint was written by {processes} process(es), this run has "
                f"{self.sampler.num_replicas}: epoch {epoch} goes on after its first {examples} examples, "
                "but Lightning counts the batches of the epoch per process, so it may end early or late, "
                "and the examples and random numbers will not be those of an uninterrupted run"
            )
