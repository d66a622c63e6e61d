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
    ids at chosen positions and ``-100`` elsewhere. Each example's random draws are a function of
    ``(seed, example key)`` and the position alone, so an example is masked the same in any batch,
    whichever worker builds it; the batch is masked at once, as arrays.
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

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        lengths = np.fromiter((len(e["input_ids"]) for e in examples), np.int64, len(examples))
        width = -(-int(lengths.max()) // self.pad_to_multiple_of) * self.pad_to_multiple_of
        real = np.arange(width) < lengths[:, None]  # (batch, width): True on each example's tokens
        input_ids = np.full(real.shape, self.pad_id, dtype=np.int64)
        input_ids[real] = np.concatenate([e["input_ids"] for e in examples])
        token_type_ids = np.zeros(real.shape, dtype=np.int64)
        token_type_ids[real] = np.concatenate([e["token_type_ids"] for e in examples])
        keys = np.fromiter((int(e["key"]) for e in examples), np.uint64, len(examples))
        input_ids, labels = self.mask(input_ids, real, keys)
        out = {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_type_ids),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "labels": torch.from_numpy(labels),
        }
        if "next_sentence_label" in examples[0]:
            out["next_sentence_label"] = torch.tensor([e["next_sentence_label"] for e in examples])
        return out

    def mask(self, ids: np.ndarray, real: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masked ids and labels of a padded batch ``ids`` (batch, width), ``real`` marking tokens.

        The whole batch at once, yet each row's choices depend on its (seed, key) alone: every draw is
        a counter-based uniform of (seed, key, position, purpose) (``uniforms``).
        """
        width = ids.shape[1]
        maskable = real & ~np.isin(ids, self.special_ids)
        rounding = uniforms(self.seed, keys, np.zeros(1, dtype=np.uint64))[:, 0]
        count = np.floor(self.mlm_probability * maskable.sum(1) + rounding)
        # the count smallest of a uniform score per maskable position: a uniform choice without replacement
        score = np.where(maskable, uniforms(self.seed, keys, position_counters(width, CHOICE)), np.inf)
        rank = np.empty(ids.shape, dtype=np.int64)
        np.put_along_axis(rank, np.argsort(score, axis=1), np.arange(width)[None], axis=1)
        chosen = rank < count[:, None]
        labels = np.where(chosen, ids, IGNORE_INDEX)
        draw = uniforms(self.seed, keys, position_counters(width, ACTION))
        to_mask = chosen & (draw < self.mask_token_ratio)
        to_random = chosen & ~to_mask & (draw < self.mask_token_ratio + self.random_token_ratio)
        pick = uniforms(self.seed, keys, position_counters(width, TOKEN))[to_random] * len(self.random_ids)
        ids = ids.copy()
        ids[to_mask] = self.mask_id
        ids[to_random] = self.random_ids[np.minimum(pick.astype(np.int64), len(self.random_ids) - 1)]
        return ids, labels


# Counter-based random numbers: output i of SplitMix64 (Steele et al. 2014) is a fixed mixing of
# state + i x the golden ratio. The state comes from (seed, key); counter 0 is the row's own draw,
# 1 + 3 x position + purpose the draws at a position.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
CHOICE, ACTION, TOKEN = 0, 1, 2  # purposes: whether chosen, what becomes of it, which random token
PURPOSES = 3


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 whose every output bit depends on every input bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def position_counters(width: int, purpose: int) -> np.ndarray:
    return np.arange(width, dtype=np.uint64) * np.uint64(PURPOSES) + np.uint64(1 + purpose)


def uniforms(seed: int, keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) of shape (len(keys), len(counters)), each a function of (seed, key, counter)
    alone: the same for an example in any batch, at any width."""
    seed_state = mix64(np.asarray([seed % 2**64], dtype=np.uint64) * GOLDEN)
    state = mix64(seed_state ^ keys.astype(np.uint64))
    bits = mix64(state[:, None] + counters[None, :] * GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
