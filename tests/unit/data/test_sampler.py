"""Length-grouped sampling: every key once per epoch, similar lengths per batch, fixed validation order."""

import numpy as np

from lmforge.data.sampler import LengthGroupedSampler

LENGTHS = np.random.default_rng(0).integers(5, 129, 1000)


def length_of(keys):
    return LENGTHS[keys % len(LENGTHS)]


def test_each_epoch_yields_every_example_once_with_its_epoch_in_the_key():
    sampler = LengthGroupedSampler(len(LENGTHS), 32, length_of, seed=1)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        keys = np.array(list(sampler))
        assert sorted(keys % 1000) == list(range(1000))
        assert (keys // 1000 == epoch).all()


def test_batches_hold_similar_lengths():
    sampler = LengthGroupedSampler(len(LENGTHS), 32, length_of, seed=1, group_batches=10)
    keys = np.array(list(sampler))
    spread = [np.ptp(length_of(keys[i : i + 32])) for i in range(0, 960, 32)]
    random_spread = [np.ptp(LENGTHS[i : i + 32]) for i in range(0, 960, 32)]
    assert np.mean(spread) < 0.2 * np.mean(random_spread)


def test_order_changes_with_epoch_and_seed_but_repeats_for_the_same_ones():
    a = LengthGroupedSampler(len(LENGTHS), 32, length_of, seed=1)
    b = LengthGroupedSampler(len(LENGTHS), 32, length_of, seed=2)
    first = list(a)
    assert first == list(a)
    assert first != list(b)
    a.set_epoch(1)
    assert [k % 1000 for k in a] != [k % 1000 for k in first]


def test_validation_order_is_fixed_and_covers_each_draw():
    sampler = LengthGroupedSampler(len(LENGTHS), 32, length_of, shuffle=False, draws=3)
    keys = list(sampler)
    sampler.set_epoch(5)
    assert keys == list(sampler)
    assert len(sampler) == len(keys) == 3000
    assert sorted(keys) == list(range(3000))


def test_without_lengths_it_only_shuffles():
    sampler = LengthGroupedSampler(100, 10, None, seed=0)
    keys = list(sampler)
    assert sorted(keys) == list(range(100)) and keys != list(range(100))
