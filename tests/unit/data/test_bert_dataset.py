"""Next-sentence pairs: 50 % IsNext, IsNext really consecutive, NotNext from other documents."""

import numpy as np
import pytest

from lmforge.data.bert_dataset import BertPretrainingDataset, build_chunks, truncate_pair
from lmforge.data.tokenized import TokenizedCorpus
from lmforge.objectives.nsp import IS_NEXT, NOT_NEXT

CLS, SEP = 2, 3


def synthetic_corpus(n_documents=120, seed=0) -> TokenizedCorpus:
    """Documents of 1-12 sentences of 3-40 tokens; every token id is unique, so a token's place is known."""
    rng = np.random.default_rng(seed)
    sentence_lengths, document_sizes = [], []
    for _ in range(n_documents):
        n = int(rng.integers(1, 13))
        document_sizes.append(n)
        sentence_lengths.extend(rng.integers(3, 41, n).tolist())
    sentence_offsets = np.concatenate(([0], np.cumsum(sentence_lengths)))
    document_offsets = np.concatenate(([0], np.cumsum(document_sizes)))
    tokens = np.arange(10, 10 + sentence_offsets[-1], dtype=np.int64)
    return TokenizedCorpus(tokens, sentence_offsets, document_offsets)


def document_of_token(corpus: TokenizedCorpus, token: int) -> int:
    sentence = np.searchsorted(corpus.sentence_offsets, token - 10, side="right") - 1
    return int(np.searchsorted(corpus.document_offsets, sentence, side="right") - 1)


@pytest.fixture(scope="module")
def dataset():
    corpus = synthetic_corpus()
    documents = np.arange(corpus.n_documents)
    chunks = build_chunks(corpus, documents, max_tokens=61, short_seq_prob=0.1, min_sentences=2, seed=0)
    return BertPretrainingDataset(corpus, documents, chunks, 64, CLS, SEP, nsp=True, seed=3)


@pytest.fixture(scope="module")
def draws(dataset):
    return [dataset.draw(key) for key in range(len(dataset) * 20)]


def segments(example):
    ids = example["input_ids"]
    seps = np.flatnonzero(ids == SEP)
    assert ids[0] == CLS and len(seps) == 2 and seps[1] == len(ids) - 1
    return ids[1 : seps[0]], ids[seps[0] + 1 : seps[1]]


def test_half_of_the_pairs_are_is_next(draws):
    assert len(draws) > 5000
    share = np.mean([d["next_sentence_label"] == IS_NEXT for d in draws])
    assert share == pytest.approx(0.5, abs=0.02)


def test_is_next_pairs_are_consecutive_in_their_document(dataset, draws):
    corpus = dataset.corpus
    for draw in draws:
        if draw["next_sentence_label"] != IS_NEXT:
            continue
        a, b = segments(draw)
        # Unique ids: the pair is consecutive text exactly when the ids run on without a gap.
        assert (np.diff(np.concatenate((a, b))) == 1).all()
        assert document_of_token(corpus, a[0]) == document_of_token(corpus, b[-1])
        split = draw["source"]["a_sentences"][1]
        assert b[0] - 10 == corpus.sentence_offsets[split]  # B starts a sentence


def test_not_next_segment_b_comes_from_other_documents(dataset, draws):
    corpus = dataset.corpus
    for draw in draws:
        if draw["next_sentence_label"] != NOT_NEXT:
            continue
        a, b = segments(draw)
        a_document = document_of_token(corpus, a[0])
        assert all(document_of_token(corpus, token) != a_document for token in b)
        assert all(span[0] != a_document for span in draw["source"]["b_spans"])


def test_lengths_do_not_give_the_label_away(draws):
    lengths = {
        label: [len(d["input_ids"]) for d in draws if d["next_sentence_label"] == label]
        for label in (IS_NEXT, NOT_NEXT)
    }
    assert np.mean(lengths[NOT_NEXT]) == pytest.approx(np.mean(lengths[IS_NEXT]), rel=0.1)


def test_segments_fit_and_carry_segment_ids(draws):
    for draw in draws[:500]:
        a, b = segments(draw)
        assert len(draw["input_ids"]) <= 64 and len(a) and len(b)
        assert (draw["token_type_ids"] == np.r_[np.zeros(len(a) + 2), np.ones(len(b) + 1)]).all()


def test_draws_are_deterministic_and_change_with_the_epoch(dataset):
    n = len(dataset)
    assert all((dataset.draw(k)["input_ids"] == dataset.draw(k)["input_ids"]).all() for k in range(50))
    differ = sum(
        not np.array_equal(dataset.draw(k)["input_ids"], dataset.draw(k + n)["input_ids"]) for k in range(50)
    )
    assert differ > 25


def reference_truncate(len_a, len_b, max_tokens):
    """BERT's loop: while too long, drop a token from the longer segment (B on ties)."""
    while len_a + len_b > max_tokens:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncation_is_longest_first():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        len_a, len_b, max_tokens = (int(x) for x in rng.integers(1, 200, 3))
        max_tokens = max(max_tokens, 2)
        assert truncate_pair(len_a, len_b, max_tokens) == reference_truncate(len_a, len_b, max_tokens)


def test_chunks_cover_whole_sentences_of_one_document():
    corpus = synthetic_corpus(seed=1)
    documents = np.arange(corpus.n_documents)
    chunks = build_chunks(corpus, documents, max_tokens=61, short_seq_prob=0.0, min_sentences=2, seed=0)
    for position, first, end in chunks:
        doc_first, doc_end = corpus.document_sentences(int(documents[position]))
        assert doc_first <= first and end <= doc_end and end - first >= 2
    multi = [d for d in documents if np.diff(corpus.document_offsets)[d] >= 2]
    covered = {s for _, first, end in chunks for s in range(first, end)}
    for d in multi:  # every sentence of a multi-sentence document is in exactly one chunk
        first, end = corpus.document_sentences(int(d))
        assert set(range(first, end)) <= covered


def test_masked_lm_only_examples_are_one_segment():
    corpus = synthetic_corpus(seed=2)
    documents = np.arange(corpus.n_documents)
    chunks = build_chunks(corpus, documents, max_tokens=62, short_seq_prob=0.0, min_sentences=1, seed=0)
    dataset = BertPretrainingDataset(corpus, documents, chunks, 64, CLS, SEP, nsp=False, seed=0)
    for key in range(len(dataset)):
        example = dataset[key]
        ids = example["input_ids"]
        assert ids[0] == CLS and ids[-1] == SEP and (ids == SEP).sum() == 1
        assert (np.diff(ids[1:-1]) == 1).all() and len(ids) <= 64
        assert "next_sentence_label" not in example
