"""Masking statistics: 15 % chosen, of which 80 % [MASK], 10 % random, 10 % kept; specials never chosen."""

import numpy as np
import pytest

from lmforge.data.masking import MaskedLMCollator
from lmforge.objectives.mlm import IGNORE_INDEX

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
VOCAB = 1000


def make_examples(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    examples = []
    for key in range(n):
        length_a, length_b = rng.integers(5, 60, size=2)
        ids = np.concatenate(
            ([CLS], rng.integers(5, VOCAB, length_a), [SEP], rng.integers(5, VOCAB, length_b), [SEP])
        )
        ids[rng.random(len(ids)) < 0.02] = UNK
        examples.append({"input_ids": ids, "token_type_ids": np.zeros(len(ids), dtype=np.int64), "key": key})
    return examples


@pytest.fixture(scope="module")
def masked():
    collator = MaskedLMCollator(PAD, MASK, (PAD, UNK, CLS, SEP, MASK), VOCAB, seed=7)
    examples = make_examples(3000)
    batches = [collator(examples[i : i + 64]) for i in range(0, len(examples), 64)]
    originals = [examples[i : i + 64] for i in range(0, len(examples), 64)]
    return collator, batches, originals


def originals_matrix(group, width):
    out = np.full((len(group), width), PAD)
    for row, example in enumerate(group):
        out[row, : len(example["input_ids"])] = example["input_ids"]
    return out


def test_fifteen_percent_of_maskable_tokens_are_chosen(masked):
    _, batches, originals = masked
    chosen = maskable = 0
    for batch, group in zip(batches, originals, strict=True):
        original = originals_matrix(group, batch["input_ids"].shape[1])
        maskable += int(np.isin(original, [5 + np.arange(VOCAB - 5)]).sum())
        chosen += int((batch["labels"] != IGNORE_INDEX).sum())
    assert maskable > 100_000
    assert chosen / maskable == pytest.approx(0.15, abs=0.005)


def test_eighty_ten_ten_split_of_the_chosen_tokens(masked):
    _, batches, originals = masked
    as_mask = as_random = kept = 0
    for batch, group in zip(batches, originals, strict=True):
        original = originals_matrix(group, batch["input_ids"].shape[1])
        picked = batch["labels"].numpy() != IGNORE_INDEX
        now = batch["input_ids"].numpy()[picked]
        before = original[picked]
        as_mask += int((now == MASK).sum())
        kept += int((now == before).sum())
        as_random += int(((now != MASK) & (now != before)).sum())
    total = as_mask + as_random + kept
    # A random replacement can draw the original id (1 in 995): it then counts as kept.
    assert as_mask / total == pytest.approx(0.80, abs=0.015)
    assert as_random / total == pytest.approx(0.10, abs=0.015)
    assert kept / total == pytest.approx(0.10, abs=0.015)


def test_special_and_padding_positions_are_never_chosen(masked):
    _, batches, originals = masked
    for batch, group in zip(batches, originals, strict=True):
        original = originals_matrix(group, batch["input_ids"].shape[1])
        picked = batch["labels"].numpy() != IGNORE_INDEX
        assert not np.isin(original[picked], [PAD, UNK, CLS, SEP, MASK]).any()
        assert (batch["labels"].numpy()[picked] == original[picked]).all()
        specials = np.isin(original, [PAD, UNK, CLS, SEP])
        assert (batch["input_ids"].numpy()[specials] == original[specials]).all()


def test_random_replacements_are_never_special(masked):
    _, batches, originals = masked
    for batch, group in zip(batches, originals, strict=True):
        original = originals_matrix(group, batch["input_ids"].shape[1])
        picked = batch["labels"].numpy() != IGNORE_INDEX
        now = batch["input_ids"].numpy()[picked]
        replaced = now[(now != MASK) & (now != original[picked])]
        assert replaced.size and not np.isin(replaced, [PAD, UNK, CLS, SEP]).any()


def test_padding_and_attention_mask(masked):
    _, batches, originals = masked
    batch, group = batches[0], originals[0]
    lengths = [len(e["input_ids"]) for e in group]
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= max(lengths)
    assert batch["attention_mask"].sum(1).tolist() == lengths


def test_masking_depends_on_the_example_key_only(masked):
    collator, batches, _ = masked
    examples = make_examples(3000)
    again = collator(list(reversed(examples[:64])))
    first = batches[0]
    for row in range(64):
        width = len(examples[row]["input_ids"])
        assert (again["input_ids"][63 - row, :width] == first["input_ids"][row, :width]).all()


def test_ratios_are_configurable():
    collator = MaskedLMCollator(PAD, MASK, (PAD, UNK, CLS, SEP, MASK), VOCAB, 0.3, 1.0, 0.0, seed=1)
    batch = collator(make_examples(200))
    picked = batch["labels"] != IGNORE_INDEX
    assert (batch["input_ids"][picked] == MASK).all()
    maskable = ((batch["input_ids"] >= 5) | (batch["input_ids"] == MASK)).sum()
    assert picked.sum() / maskable == pytest.approx(0.3, abs=0.02)


def test_bad_ratios_are_refused():
    with pytest.raises(ValueError, match="sum to at most 1"):
        MaskedLMCollator(PAD, MASK, (PAD,), VOCAB, 0.15, 0.9, 0.2)
