"""Token shards and causal-LM packing: full blocks, end-of-text between documents, nothing lost or
repeated across shard boundaries; the shard format and its reuse."""

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from lmforge.data.packing import BlockSampler, PackedBlocks, PackedStream
from lmforge.data.tokenized import TokenizedCorpus, token_dtype

EOT = 0


def word_tokenizer(vocab_size: int = 600) -> Tokenizer:
    """Each word ``wN`` is token N: a document's ids are known in advance."""
    vocab = {f"w{i}": i for i in range(vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="w1"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def random_documents(n: int = 60, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [
        [
            " ".join(f"w{t}" for t in rng.integers(2, 600, rng.integers(1, 15)))
            for _ in range(rng.integers(1, 5))
        ]
        for _ in range(n)
    ]


def expected_ids(document: list[str]) -> list[int]:
    return [int(word[1:]) for sentence in document for word in sentence.split()]


@pytest.fixture
def sharded(tmp_path):
    documents = random_documents()
    corpus = TokenizedCorpus.build(documents, word_tokenizer(), tmp_path, shard_tokens=100)
    return documents, corpus


def test_shards_hold_whole_documents_and_every_token_once(sharded):
    documents, corpus = sharded
    assert len(corpus.shards) > 3  # about 1,400 tokens in shards of about 100
    assert corpus.n_documents == len(documents)
    for index, document in enumerate(documents):
        assert corpus.document_tokens(index).tolist() == expected_ids(document)
    assert sum(len(s) for s in corpus.shards) == corpus.n_tokens


def test_reads_across_shard_boundaries_are_exact(sharded):
    documents, corpus = sharded
    everything = np.concatenate([expected_ids(d) for d in documents])
    for start, end in [(0, corpus.n_tokens), (95, 105), (99, 301), (1, 2)]:
        assert corpus.tokens_between(start, end).tolist() == everything[start:end].tolist()


def test_the_stream_joins_documents_with_end_of_text(sharded):
    documents, corpus = sharded
    order = np.array([5, 2, 9, 0])
    stream = PackedStream(corpus, order, EOT)
    expected = [t for d in order for t in [*expected_ids(documents[d]), EOT]]
    assert len(stream) == len(expected)
    assert stream.read(0, len(stream)).tolist() == expected
    for start in range(0, len(expected) - 7, 3):
        assert stream.read(start, start + 7).tolist() == expected[start : start + 7]


@pytest.mark.parametrize("shuffle", [False, True])
def test_blocks_are_full_and_cover_the_stream_once(sharded, shuffle):
    _, corpus = sharded
    stream = PackedStream(corpus, np.arange(corpus.n_documents), EOT)
    blocks = PackedBlocks(stream, block_len=32)
    sampler = BlockSampler(len(stream), 32, shuffle=shuffle, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        starts = sorted(sampler)
        assert len(starts) == len(sampler)
        offset = starts[0]
        assert starts == [offset + 32 * i for i in range(len(starts))]  # a grid: no overlap, no gap
        assert len(stream) - 1 - (starts[-1] + 32) < 32  # what is left after the last block is short
        for start in starts:
            item = blocks[start]
            assert item["input_ids"].shape == (32,) and item["labels"].shape == (32,)
            assert item["labels"][:-1].tolist() == item["input_ids"][1:].tolist()
        if not shuffle:
            assert offset == 0


def test_training_blocks_shift_and_reshuffle_between_epochs(sharded):
    _, corpus = sharded
    sampler = BlockSampler(corpus.n_tokens, 32, shuffle=True, seed=1)
    orders = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert len({order[0] % 32 for order in orders}) > 1  # the grid moves
    assert orders[0] != sorted(orders[0])


@pytest.mark.parametrize(("vocab", "dtype"), [(8192, np.uint16), (65536, np.uint16), (65537, np.uint32)])
def test_tokens_are_stored_in_the_smallest_type_that_fits(vocab, dtype):
    assert token_dtype(vocab) == dtype


def test_shards_are_memory_mapped_when_loaded(sharded, tmp_path):
    loaded = TokenizedCorpus.load(tmp_path)
    assert all(isinstance(shard, np.memmap) for shard in loaded.shards)
    assert loaded.shards[0].dtype == np.uint16
