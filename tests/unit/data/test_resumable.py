"""The data loader's place in an epoch, saved and restored on several processes (a fake rank and world
size): a resumed run goes on where it stopped."""

from __future__ import annotations

import pytest

from lmforge.data.packing import BlockSampler
from lmforge.data.resumable import ResumableLoader
from lmforge.data.sampler import LengthGroupedSampler, ShardedSampler, ShuffledSampler

SAMPLERS = {
    "length_grouped": lambda rank, world: LengthGroupedSampler(
        90, 3, length_of=lambda keys: keys % 7, seed=5, group_batches=2, rank=rank, world_size=world
    ),
    "block": lambda rank, world: BlockSampler(600, 8, shuffle=True, seed=5, rank=rank, world_size=world),
    "shuffled": lambda rank, world: ShuffledSampler(90, seed=5, rank=rank, world_size=world),
}


def loader(sampler: ShardedSampler, epoch: int) -> ResumableLoader:
    sampler.set_epoch(epoch)  # as Lightning does before each epoch
    return ResumableLoader(list(range(10_000)), sampler, seed=0, batch_size=3, drop_last=True)


def keys(batches) -> list[int]:
    return [int(key) for batch in batches for key in batch]


@pytest.mark.parametrize("make", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_every_rank_of_a_resumed_run_goes_on_where_it_stopped(make):
    world, done = 2, 4
    for rank in range(world):
        whole = list(loader(make(rank, world), epoch=2))
        stopped = loader(make(rank, world), epoch=2)
        batches = iter(stopped)
        first = [next(batches) for _ in range(done)]
        state = stopped.state_dict()
        assert state == {"epoch": 2, "examples": done * 3 * world, "processes": world}

        resumed = loader(make(rank, world), epoch=0)
        resumed.load_state_dict(state)
        resumed.sampler.set_epoch(2)
        rest = list(resumed)
        assert keys(first + rest) == keys(whole)
        assert len(resumed) == len(whole)  # Lightning counts the epoch's batches from its start
        assert resumed.state_dict()["examples"] == len(whole) * 3 * world
        assert keys(resumed) == keys(whole)  # the next pass of the same epoch starts at its head


def test_a_place_in_an_epoch_that_had_ended_does_not_skip_into_the_next():
    ended = loader(SAMPLERS["block"](0, 1), epoch=1)
    list(ended)
    resumed = loader(SAMPLERS["block"](0, 1), epoch=1)
    resumed.load_state_dict(ended.state_dict())
    resumed.sampler.set_epoch(2)
    assert keys(resumed) == keys(loader(SAMPLERS["block"](0, 1), epoch=2))


def test_another_number_of_processes_goes_on_at_the_same_example_and_warns():
    on_two = [loader(SAMPLERS["block"](rank, 2), epoch=1) for rank in range(2)]
    for part in on_two:
        batches = iter(part)
        for _ in range(5):
            next(batches)
    alone = loader(SAMPLERS["block"](0, 1), epoch=1)
    with pytest.warns(UserWarning, match="written by 2 process"):
        alone.load_state_dict(on_two[0].state_dict())
    order = keys(loader(SAMPLERS["block"](0, 1), epoch=1))  # epoch 1's global order, whole batches
    assert keys(alone) == order[5 * 3 * 2 :]
