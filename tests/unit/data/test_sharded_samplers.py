"""Our samplers shard themselves across data-parallel ranks (tested with a fake rank and world size)."""

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from lmforge.data.packing import BlockSampler
from lmforge.data.sampler import LengthGroupedSampler


def lengths(keys: np.ndarray) -> np.ndarray:
    return (np.asarray(keys) * 7919) % 97


def grouped(rank: int, world: int, batch_size: int = 4, epoch: int = 0, **kwargs) -> LengthGroupedSampler:
    sampler = LengthGroupedSampler(
        103, batch_size, length_of=lengths, seed=3, group_batches=3, rank=rank, world_size=world, **kwargs
    )
    sampler.set_epoch(epoch)
    return sampler


def blocks(rank: int, world: int, epoch: int = 0, shuffle: bool = True) -> BlockSampler:
    sampler = BlockSampler(1000, 16, shuffle=shuffle, seed=3, rank=rank, world_size=world)
    sampler.set_epoch(epoch)
    return sampler


MAKERS = {"length_grouped": grouped, "block": blocks}


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_equal_shares_of_the_epoch(make, world):
    shares = [list(make(rank, world)) for rank in range(world)]
    whole = list(make(0, 1))
    assert len({len(share) for share in shares}) == 1
    assert all(len(make(rank, world)) == len(shares[rank]) for rank in range(world))
    assert len(shares[0]) == len(whole) // world
    keys = [key for share in shares for key in share]
    assert len(set(keys)) == len(keys) and set(keys) <= set(whole)


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_every_epoch_has_its_own_order_the_same_on_every_call(make):
    assert list(make(1, 2, epoch=0)) == list(make(1, 2, epoch=0))
    assert list(make(1, 2, epoch=0)) != list(make(1, 2, epoch=1))


def test_the_ranks_batches_together_are_the_batch_of_one_process_with_world_times_the_size():
    world, batch = 2, 4
    shares = [list(grouped(rank, world, batch, epoch=2)) for rank in range(world)]
    whole = list(grouped(0, 1, batch * world, epoch=2))
    for step in range(len(shares[0]) // batch):
        together = sorted(k for share in shares for k in share[step * batch : (step + 1) * batch])
        assert together == sorted(whole[step * batch * world : (step + 1) * batch * world])
    block_shares = [list(blocks(rank, world, epoch=1)) for rank in range(world)]
    assert sorted(block_shares[0] + block_shares[1]) == sorted(
        list(blocks(0, 1, epoch=1))[: 2 * len(block_shares[0])]
    )


def test_validation_order_is_sharded_too():
    shares = [list(grouped(rank, 2, shuffle=False, draws=2)) for rank in range(2)]
    assert not set(shares[0]) & set(shares[1]) and len(shares[0]) == 103
    assert (
        list(blocks(0, 2, shuffle=False))
        == list(blocks(0, 1, shuffle=False))[0::2][: len(blocks(0, 2, shuffle=False))]
    )


def test_lightning_leaves_our_samplers_unwrapped():
    # Lightning wraps any sampler that is not a DistributedSampler (and its wrapper drops set_epoch)
    assert isinstance(grouped(0, 2), DistributedSampler) and isinstance(blocks(0, 2), DistributedSampler)
    assert grouped(0, 1).num_replicas == 1 and grouped(0, 1).rank == 0
