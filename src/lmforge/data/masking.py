"""Pad a list of examples into a batch and mask it for the masked-language-model objective."""

from __future__ import annotations

import numpy as np
import torch

from lmforge.objectives.mlm import IGNORE_INDEX


class MaskedLMCollator:
    """BERT masking: choose ``mlm_probability`` of the maskable tokens; of those, ``mask_token_ratio``
    become ``[MASK]``, ``random_token_ratio`` a random non-special token, and the rest stay.

    Maskable means neither special nor padding. The count per sequence is ``mlm_probability`` times
    the maskable tokens, rounded at random so that its expectation is exact. Labels hold the original
    ids at chosen positions and ``-100`` elsewhere. Each example is masked by a generator seeded from
    ``(seed, example key)``, so a batch is the same whichever worker builds it.
    """

    def __init__(
        self,
        pad_id: int,
        mask_id: int,
        special_ids: tuple[int, ...],
        vocab_size: int,
        mlm_probability: float = 0.15,
        mask_token_ratio: float = 0.8,
        random_token_ratio: float = 0.1,
        seed: int = 0,
        pad_to_multiple_of: int = 8,
    ) -> None:
        if not 0.0 < mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability={mlm_probability} must be in (0, 1]")
        if mask_token_ratio < 0 or random_token_ratio < 0 or mask_token_ratio + random_token_ratio > 1:
            raise ValueError("mask_token_ratio and random_token_ratio must be >= 0 and sum to at most 1")
        self.pad_id = pad_id
        self.mask_id = mask_id
        self.special_ids = np.asarray(sorted(set(special_ids)), dtype=np.int64)
        self.random_ids = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), self.special_ids)
        self.mlm_probability = mlm_probability
        self.mask_token_ratio = mask_token_ratio
        self.random_token_ratio = random_token_ratio
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of

    def mask(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Masked copy of one sequence's ids, and its labels."""
        ids = ids.astype(np.int64, copy=True)
        labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
        maskable = np.flatnonzero(~np.isin(ids, self.special_ids))
        count = int(np.floor(self.mlm_probability * len(maskable) + rng.random()))
        if count == 0:
            return ids, labels
        chosen = rng.choice(maskable, size=count, replace=False)
        labels[chosen] = ids[chosen]
        draw = rng.random(count)
        to_mask = draw < self.mask_token_ratio
        to_random = (draw >= self.mask_token_ratio) & (draw < self.mask_token_ratio + self.random_token_ratio)
        ids[chosen[to_mask]] = self.mask_id
        ids[chosen[to_random]] = rng.choice(self.random_ids, size=int(to_random.sum()))
        return ids, labels

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(example["input_ids"]) for example in examples)
        width = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(examples)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        token_type_ids = np.zeros((batch, width), dtype=np.int64)
        attention_mask = np.zeros((batch, width), dtype=np.int64)
        labels = np.full((batch, width), IGNORE_INDEX, dtype=np.int64)
        for row, example in enumerate(examples):
            rng = np.random.default_rng((self.seed, int(example["key"])))
            ids, row_labels = self.mask(np.asarray(example["input_ids"]), rng)
            n = len(ids)
            input_ids[row, :n] = ids
            labels[row, :n] = row_labels
            token_type_ids[row, :n] = example["token_type_ids"]
            attention_mask[row, :n] = 1
        out = {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_type_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(labels),
        }
        if "next_sentence_label" in examples[0]:
            out["next_sentence_label"] = torch.tensor([e["next_sentence_label"] for e in examples])
        return out
