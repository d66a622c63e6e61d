"""Pairs -> token ids with the loss on the response alone, and the batches built from them.

A pair reads ``template(prompt) response <|endoftext|>``: the prompt in the objective's template, then
the response and an end-of-text token. The inputs are that sequence but its last token, the targets
the same shifted by one; every target that is a token of the prompt is ``IGNORE_INDEX`` (-100), so
the loss counts the response and its end-of-text token only. A pair longer than ``max_seq_len + 1``
tokens is cut at its end (its response loses its end and the end-of-text token); a pair whose prompt
alone fills ``max_seq_len`` tokens leaves no response to learn and is left out.

Batches of single pairs are right-padded to the longest of the batch: the causal mask already keeps
every real token from the padding after it, so no attention mask is needed. Packed batches
(``PackedPairs``) put several pairs in one row of ``max_seq_len`` tokens, each with positions from 0
and its own segment id, so that attention stays within each pair (a block-diagonal causal mask).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import Dataset

from lmforge.data.sft.pairs import InstructionPair
from lmforge.objectives.mlm import IGNORE_INDEX

Item = tuple[np.ndarray, int, InstructionPair]  # a pair's token ids, how many are its prompt's, the pair


@dataclass
class EncodedPairs(Dataset):
    """The token ids of a split's pairs, stored flat: pair i is ``ids[offsets[i]:offsets[i + 1]]``, of
    which the first ``prompt_lengths[i]`` are its prompt in the template."""

    ids: np.ndarray  # int32, every pair's tokens one after another
    offsets: np.ndarray  # int64, len(pairs) + 1
    prompt_lengths: np.ndarray  # int64
    pairs: list[InstructionPair]  # the texts (references for generation)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Item:
        return (
            self.ids[self.offsets[index] : self.offsets[index + 1]],
            int(self.prompt_lengths[index]),
            (self.pairs[index]),
        )

    def lengths(self) -> np.ndarray:
        """Tokens per pair, the end-of-text token included."""
        return np.diff(self.offsets)


class PairEncoder:
    """Encodes pairs with ``tokenizer``, each prompt put in the template by ``prompt_text``."""

    def __init__(
        self, tokenizer: Tokenizer, prompt_text: Callable[[str], str], eot_id: int, max_seq_len: int
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_text = prompt_text
        self.eot_id = eot_id
        self.max_seq_len = max_seq_len

    def encode(self, pairs: Sequence[InstructionPair]) -> tuple[EncodedPairs, dict[str, int]]:
        """The encoded pairs, and counts of those ``cut`` at their end and ``left_out`` (prompt too long)."""
        prompts = self.tokenizer.encode_batch(
            [self.prompt_text(p.prompt) for p in pairs], add_special_tokens=False
        )
        responses = self.tokenizer.encode_batch([p.response for p in pairs], add_special_tokens=False)
        ids, prompt_lengths, kept = [], [], []
        cut = 0
        limit = self.max_seq_len + 1  # inputs and targets are one token shorter than the sequence
        for pair, prompt, response in zip(pairs, prompts, responses, strict=True):
            if len(prompt.ids) >= limit:
                continue
            sequence = [*prompt.ids, *response.ids, self.eot_id]
            cut += len(sequence) > limit
            ids.append(sequence[:limit])
            prompt_lengths.append(len(prompt.ids))
            kept.append(pair)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        encoded = EncodedPairs(
            ids=np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum())),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            prompt_lengths=np.asarray(prompt_lengths, dtype=np.int64),
            pairs=kept,
        )
        return encoded, {"cut": cut, "left_out": len(pairs) - len(kept)}


def shifted(ids: np.ndarray, prompt_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of one pair: the targets that are prompt tokens are ``IGNORE_INDEX``."""
    tokens = torch.from_numpy(ids.astype(np.int64))
    labels = tokens[1:].clone()
    labels[: prompt_length - 1] = IGNORE_INDEX
    return tokens[:-1], labels


class PairCollator:
    """Right-pads single pairs to the longest of the batch: ``input_ids``, ``labels`` and
    ``attention_mask`` (1 on real tokens), int64. With ``texts`` (evaluation) the batch also carries
    each pair's ``prompt_ids`` (its prompt in the template, for generation), ``prompts`` and
    ``responses`` (the reference texts)."""

    def __init__(self, pad_id: int, texts: bool = False) -> None:
        self.pad_id = pad_id
        self.texts = texts

    def __call__(self, items: Sequence[Item]) -> dict[str, Any]:
        width = max(len(ids) for ids, _, _ in items) - 1
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.int64)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.int64)
        attention_mask = torch.zeros((len(items), width), dtype=torch.int64)
        for row, (ids, prompt_length, _) in enumerate(items):
            inputs, targets = shifted(ids, prompt_length)
            input_ids[row, : len(inputs)] = inputs
            labels[row, : len(targets)] = targets
            attention_mask[row, : len(inputs)] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        if self.texts:
            batch["prompt_ids"] = [ids[:prompt_length].tolist() for ids, prompt_length, _ in items]
            batch["prompts"] = [pair.prompt for _, _, pair in items]
            batch["responses"] = [pair.response for _, _, pair in items]
        return batch


def pack(lengths: np.ndarray, block_len: int, seed: int) -> list[np.ndarray]:
    """Pair indices per block: the pairs in a seeded random order, each put in the current block while
    its ``lengths`` (inputs per pair, each at most ``block_len``) fit, else starting the next block."""
    blocks: list[list[int]] = [[]]
    filled = 0
    for index in np.random.default_rng(seed).permutation(len(lengths)).tolist():
        if filled + lengths[index] > block_len:
            blocks.append([])
            filled = 0
        blocks[-1].append(index)
        filled += int(lengths[index])
    return [np.asarray(block, dtype=np.int64) for block in blocks if block]


class PackedPairs(Dataset):
    """Rows of ``block_len`` tokens, each holding whole pairs (``pack``): ``input_ids``, ``labels``,
    ``attention_mask``, ``position_ids`` (from 0 in every pair) and ``segment_ids`` (the pair's place
    in the row; padding at the end is a segment of its own)."""

    def __init__(self, pairs: EncodedPairs, block_len: int, pad_id: int, seed: int) -> None:
        self.pairs = pairs
        self.block_len = block_len
        self.pad_id = pad_id
        self.blocks = pack(pairs.lengths() - 1, block_len, seed)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = {
            "input_ids": torch.full((self.block_len,), self.pad_id, dtype=torch.int64),
            "labels": torch.full((self.block_len,), IGNORE_INDEX, dtype=torch.int64),
            "attention_mask": torch.zeros(self.block_len, dtype=torch.int64),
            "position_ids": torch.zeros(self.block_len, dtype=torch.int64),
            "segment_ids": torch.full((self.block_len,), len(self.blocks[index]), dtype=torch.int64),
        }
        start = 0
        for segment, pair in enumerate(self.blocks[index].tolist()):
            ids, prompt_length, _ = self.pairs[pair]
            inputs, targets = shifted(ids, prompt_length)
            span = slice(start, start + len(inputs))
            row["input_ids"][span], row["labels"][span] = inputs, targets
            row["attention_mask"][span] = 1
            row["position_ids"][span] = torch.arange(len(inputs))
            row["segment_ids"][span] = segment
            start += len(inputs)
        return row
