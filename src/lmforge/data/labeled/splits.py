"""Train / val / test splits fixed by ``split_seed`` alone, never by the run's seed.

Without groups the split is stratified: each label's examples are shuffled and cut by the fractions,
so every split keeps the class balance and every label keeps at least one training example. With
groups (the book of a Bible verse) whole groups are dealt out in a shuffled order, so no group is in
two splits. A few-shot run keeps K training examples per label (``few_shot``), also drawn by
``split_seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmforge.errors import ConfigError

Fractions = dict[str, float]  # split name ('val', 'test') -> share of the examples


def stratified_split(labels: Sequence[str], fractions: Fractions, seed: int) -> dict[str, np.ndarray]:
    """Indices per split (``train`` and the keys of ``fractions``), each label cut by the fractions."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    parts: dict[str, list[np.ndarray]] = {"train": [], **{split: [] for split in fractions}}
    for label in sorted(by_label):
        members = rng.permutation(np.array(by_label[label]))
        start = 0
        for split, fraction in fractions.items():
            take = min(round(len(members) * fraction), len(members) - 1 - start)  # one stays for training
            parts[split].append(members[start : start + max(take, 0)])
            start += max(take, 0)
        parts["train"].append(members[start:])
    splits = {split: np.sort(np.concatenate([np.zeros(0, dtype=np.int64), *p])) for split, p in parts.items()}
    for split, fraction in fractions.items():
        if fraction > 0 and len(splits[split]) == 0:  # small sets: lend one example of the largest label
            splits[split], splits["train"] = _lend_one(splits["train"], labels, splits[split], split)
    return splits


def _lend_one(
    train: np.ndarray, labels: Sequence[str], split: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Move one training example of the most frequent label (which keeps another) into ``split``."""
    counts: dict[str, int] = {}
    for index in train:
        counts[labels[index]] = counts.get(labels[index], 0) + 1
    label = max(sorted(counts), key=counts.__getitem__)
    if counts[label] < 2:
        raise ConfigError(
            f"data.{name}_fraction",
            f"the set holds {len(train)} examples, one per label: too few to hold any out for the {name} "
            "split",
        )
    moved = max(index for index in train if labels[index] == label)
    return np.sort(np.append(split, moved)), train[train != moved]


def grouped_split(groups: Sequence[str], fractions: Fractions, seed: int) -> dict[str, np.ndarray]:
    """Indices per split, whole groups at a time: each split takes groups until it holds its share."""
    names = sorted(set(groups))
    sizes = dict.fromkeys(names, 0)
    for group in groups:
        sizes[group] += 1
    targets = {split: fraction * len(groups) for split, fraction in fractions.items()}
    held = dict.fromkeys(fractions, 0)
    assigned = {}
    for name in (names[i] for i in np.random.default_rng(seed).permutation(len(names))):
        split = next((s for s in fractions if held[s] < targets[s]), "train")
        assigned[name] = split
        if split != "train":
            held[split] += sizes[name]
    empty = [split for split in ("train", *fractions) if split not in assigned.values()]
    empty = [split for split in empty if split == "train" or fractions[split] > 0]
    if empty:
        raise ConfigError(
            "data.val_fraction",
            f"the set holds {len(names)} groups, and whole groups go to one split: the {empty[0]} split "
            "would be empty; lower data.val_fraction / data.test_fraction",
        )
    splits = {split: [] for split in ("train", *fractions)}
    for index, group in enumerate(groups):
        splits[assigned[group]].append(index)
    return {split: np.array(indices, dtype=np.int64) for split, indices in splits.items()}


def few_shot(labels: Sequence[str], shots: int, seed: int) -> np.ndarray:
    """Indices of ``shots`` examples of each label, in order; the same seed draws the same examples,
    and a larger ``shots`` keeps those of a smaller one (each label's order does not depend on it)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    drawn = []
    for label in sorted(by_label):
        members = by_label[label]
        if len(members) < shots:
            raise ConfigError(
                "data.shots_per_class",
                f"data.shots_per_class={shots}, but the training split holds {len(members)} examples of the "
                f"label {label!r}: lower data.shots_per_class",
            )
        drawn.append(rng.permutation(np.array(members))[:shots])
    return np.sort(np.concatenate(drawn))
