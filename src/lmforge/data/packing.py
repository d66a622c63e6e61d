"""Causal-LM examples: documents joined by an end-of-text token into one stream, cut into full blocks.

Nothing is padded: a block of ``block_len + 1`` tokens gives ``block_len`` inputs and the same
tokens shifted by one as targets; consecutive blocks share one token, so every token of the stream
but the first is a target exactly once per pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from lmforge.data.sampler import ShardedSampler
from lmforge.data.tokenized import TokenizedCorpus


class PackedStream:
    """The documents ``documents`` of a tokenised corpus, in that order, each followed by ``eot_id``.

    Reads any range of the stream without building it: the end of document ``i`` in the stream is
    ``ends[i]`` (its end-of-text token sits just before).
    """

    def __init__(self, corpus: TokenizedCorpus, documents: np.ndarray, eot_id: int) -> None:
        self.corpus = corpus
        self.documents = np.asarray(documents, dtype=np.int64)
        self.eot_id = eot_id
        lengths = corpus.document_lengths()[self.documents] + 1
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        token_starts = corpus.sentence_offsets[corpus.document_offsets[self.documents]]
        self.token_starts = token_starts.astype(np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def read(self, start: int, end: int) -> np.ndarray:
        """Tokens ``start`` up to ``end`` of the stream, as int64."""
        out = np.empty(end - start, dtype=np.int64)
        index = int(np.searchsorted(self.ends, start, side="right"))
        filled = 0
        while start < end:
            doc_start, doc_end = int(self.starts[index]), int(self.ends[index])
            take = min(end, doc_end)
            text_end = min(take, doc_end - 1)  # the last position of a document is its end-of-text
            if start < text_end:
                first = int(self.token_starts[index]) + start - doc_start
                piece = self.corpus.tokens_between(first, first + text_end - start)
                out[filled : filled + len(piece)] = piece
                filled += len(piece)
            if take == doc_end:
                out[filled] = self.eot_id
                filled += 1
            start, index = take, index + 1
        return out


class PackedBlocks(Dataset):
    """Block starting at stream position ``key``: ``input_ids`` and ``labels`` of ``block_len`` tokens."""

    def __init__(self, stream: PackedStream, block_len: int) -> None:
        self.stream = stream
        self.block_len = block_len

    def __len__(self) -> int:
        return max(0, (len(self.stream) - 1) // self.block_len)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        tokens = torch.from_numpy(self.stream.read(key, key + self.block_len + 1))
        return {"input_ids": tokens[:-1], "labels": tokens[1:]}


class BlockSampler(ShardedSampler):
    """Start positions of the blocks of a stream of ``stream_len`` tokens.

    With ``shuffle`` (training) every epoch draws its own offset in ``[0, block_len)`` for the block
    grid, so block edges move between epochs, and visits the blocks in a seeded random order;
    without it (validation) the grid starts at 0 and is read in order. Across processes each rank
    takes every world-th block of that order (``ShardedSampler``).
    """

    def __init__(
        self,
        stream_len: int,
        block_len: int,
        shuffle: bool,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(seed, shuffle, rank, world_size)
        self.stream_len = stream_len
        self.block_len = block_len

    def _offset(self) -> int:
        if not self.shuffle:
            return 0
        return int(np.random.default_rng((self.seed, self.epoch, 0)).integers(self.block_len))

    def _blocks(self) -> int:
        return max(0, (self.stream_len - 1 - self._offset()) // self.block_len)

    def __len__(self) -> int:
        return self._blocks() // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        starts = self._offset() + self.block_len * np.arange(self._blocks())
        if self.shuffle:
            starts = np.random.default_rng((self.seed, self.epoch, 1)).permutation(starts)
        yield from self.shard(starts).tolist()
