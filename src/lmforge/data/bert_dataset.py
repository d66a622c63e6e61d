"""BERT pretraining examples: spans of consecutive sentences, paired for next-sentence prediction.

Chunks are cut once (``build_chunks``); each draw of a chunk picks its own split point, IsNext or
NotNext partner and truncation from a random generator seeded by ``(seed, epoch, chunk)``, so an
example is the same whenever it is drawn again for the same epoch, in whichever worker process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from lmforge.data.tokenized import TokenizedCorpus
from lmforge.objectives.nsp import IS_NEXT, NOT_NEXT


def build_chunks(
    corpus: TokenizedCorpus,
    documents: np.ndarray,
    max_tokens: int,
    short_seq_prob: float,
    min_sentences: int,
    seed: int,
) -> np.ndarray:
    """Cut each document into runs of whole sentences of about a target length, as BERT does.

    The target is ``max_tokens``, or with probability ``short_seq_prob`` a shorter random length (so
    the model also sees short inputs). A run closes once it reaches its target and holds at least
    ``min_sentences`` sentences; a shorter remainder joins the document's previous run.
    Returns rows ``(position of the document in documents, first sentence, end sentence)``.
    """
    rng = np.random.default_rng(seed)
    lengths = corpus.sentence_lengths()
    rows: list[list[int]] = []

    def target() -> int:
        if max_tokens > 2 and rng.random() < short_seq_prob:
            return int(rng.integers(2, max_tokens + 1))
        return max_tokens

    for position, document in enumerate(documents):
        first, end = corpus.document_sentences(int(document))
        if end - first < min_sentences:
            continue
        doc_rows: list[list[int]] = []
        start, size, goal = first, 0, target()
        for sentence in range(first, end):
            size += int(lengths[sentence])
            if size >= goal and sentence + 1 - start >= min_sentences:
                doc_rows.append([position, start, sentence + 1])
                start, size, goal = sentence + 1, 0, target()
        if start < end:
            if end - start >= min_sentences or not doc_rows:
                doc_rows.append([position, start, end])
            else:
                doc_rows[-1][2] = end
        rows.extend(doc_rows)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


@dataclass(slots=True)
class Layout:
    """Where an example's tokens come from, drawn before any token is read: A is sentences
    ``first .. split - 1`` less ``a_dropped_front`` tokens at its start (``len_a`` kept), B the first
    ``len_b`` tokens of ``b_spans`` (document, first, end sentence). Without NSP, A is the whole
    chunk (``split`` is its end) and B is empty."""

    position: int  # of A's document in the split's documents
    first: int
    split: int
    len_a: int
    a_dropped_front: int
    len_b: int
    is_next: bool
    b_spans: list[tuple[int, int, int]]
    length: int  # tokens of the example: [CLS] A [SEP] B [SEP], or [CLS] A [SEP]


def truncate_pair(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """Lengths after BERT's longest-first truncation: trim the longer segment one token at a time."""
    excess = len_a + len_b - max_tokens
    if excess <= 0:
        return len_a, len_b
    gap = min(excess, abs(len_a - len_b))
    if len_a > len_b:
        len_a -= gap
    else:
        len_b -= gap
    excess -= gap
    return len_a - excess // 2, len_b - (excess + 1) // 2


class BertPretrainingDataset(Dataset):
    """Examples ``[CLS] A [SEP] B [SEP]`` (with ``nsp``) or ``[CLS] A [SEP]`` (masked LM alone).

    The sampler asks for ``key = epoch * len(self) + i``: chunk ``i``, drawn afresh for each epoch.
    With ``nsp``, the chunk is split at a random sentence boundary into A and its continuation; B is
    with probability 0.5 that continuation (label 0, IsNext) and otherwise whole sentences of about
    the same length from other documents of the same split (label 1, NotNext). Pairs longer than
    ``max_seq_len`` are truncated longest-first, keeping the junction of A and B intact: A loses
    tokens at its start, B at its end.
    """

    def __init__(
        self,
        corpus: TokenizedCorpus,
        documents: np.ndarray,
        chunks: np.ndarray,
        max_seq_len: int,
        cls_id: int,
        sep_id: int,
        nsp: bool,
        seed: int,
    ) -> None:
        if nsp and len(documents) < 2:
            raise ValueError("next-sentence prediction needs at least two documents")
        self.corpus = corpus
        self.documents = np.asarray(documents, dtype=np.int64)
        self.chunks = chunks
        self.max_seq_len = max_seq_len
        self.cls_id = cls_id
        self.sep_id = sep_id
        self.nsp = nsp
        self.seed = seed
        self.sentence_lengths = corpus.sentence_lengths()
        # Sentences per document of this split, and their running total, to draw a sentence.
        self.sentence_counts = np.diff(corpus.document_offsets)[self.documents]
        self.sentence_cumulative = np.concatenate(([0], np.cumsum(self.sentence_counts)))

    def __len__(self) -> int:
        return len(self.chunks)

    def lengths(self, keys: np.ndarray) -> np.ndarray:
        """Length in tokens of the examples drawn for ``keys`` (for batching by length), from their
        layout alone: no token is read."""
        return np.fromiter((self._layout(int(key)).length for key in keys), np.int64, len(keys))

    def _layout(self, key: int) -> Layout:
        index, epoch = key % len(self.chunks), key // len(self.chunks)
        position, first, end = (int(v) for v in self.chunks[index])
        offsets = self.corpus.sentence_offsets
        if not self.nsp:
            len_a = min(int(offsets[end] - offsets[first]), self.max_seq_len - 2)
            return Layout(position, first, end, len_a, 0, 0, True, [], len_a + 2)
        rng = np.random.default_rng((self.seed, epoch, index))
        split = int(rng.integers(first + 1, end))  # A takes sentences first..split-1
        is_next = bool(rng.random() < 0.5)
        room = int(offsets[end] - offsets[split])
        if is_next:
            b_spans = [(int(self.documents[position]), split, end)]
        else:
            b_spans = self._other_text(position, room, rng)
        full_b = sum(int(offsets[stop] - offsets[start]) for _, start, stop in b_spans)
        if not is_next:  # a long first sentence may overshoot: keep B near room for length grouping
            full_b = min(full_b, room + max(8, room // 4))
        full_a = int(offsets[split] - offsets[first])
        len_a, len_b = truncate_pair(full_a, full_b, self.max_seq_len - 3)
        return Layout(
            position, first, split, len_a, full_a - len_a, len_b, is_next, b_spans, len_a + len_b + 3
        )

    def draw(self, key: int) -> dict:
        """The example and where its parts come from (used by tests and for inspection)."""
        layout = self._layout(key)
        corpus, offsets = self.corpus, self.corpus.sentence_offsets
        ids = np.empty(layout.length, dtype=np.int64)
        ids[0], ids[layout.len_a + 1], ids[-1] = self.cls_id, self.sep_id, self.sep_id
        a_start = int(offsets[layout.first]) + layout.a_dropped_front
        ids[1 : layout.len_a + 1] = corpus.tokens_between(a_start, a_start + layout.len_a)
        if not self.nsp:
            return {"input_ids": ids, "token_type_ids": np.zeros(len(ids), dtype=np.int64), "key": key}
        at = layout.len_a + 2
        for _, start, stop in layout.b_spans:  # B's first len_b tokens
            take = min(int(offsets[stop] - offsets[start]), len(ids) - 1 - at)
            ids[at : at + take] = corpus.tokens_between(int(offsets[start]), int(offsets[start]) + take)
            at += take
        types = np.zeros(len(ids), dtype=np.int64)
        types[layout.len_a + 2 :] = 1
        return {
            "input_ids": ids,
            "token_type_ids": types,
            "next_sentence_label": IS_NEXT if layout.is_next else NOT_NEXT,
            "key": key,
            "source": {
                "a_document": int(self.documents[layout.position]),
                "a_sentences": (layout.first, layout.split),
                "b_spans": layout.b_spans,
                "a_dropped_front": layout.a_dropped_front,
            },
        }

    def _other_text(self, position: int, room: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """Whole sentences from other documents, about ``room`` tokens, as (document, first, end) spans.

        B starts at a sentence drawn uniformly from the split's documents other than A's (BERT draws
        a document, then a sentence; on a corpus of many one-sentence documents that makes the same
        few sentences start B over and over). When a document ends first, the text goes on with the
        next one (A's own is skipped), so B is as long as the true continuation would be and its
        length says nothing about the label.
        """
        n = len(self.documents)
        counts, cumulative = self.sentence_counts, self.sentence_cumulative
        draw = int(rng.integers(cumulative[-1] - counts[position]))
        if draw >= cumulative[position]:
            draw += int(counts[position])  # skip the sentences of A's document
        current = int(np.searchsorted(cumulative, draw, side="right")) - 1
        sentence = self.corpus.document_sentences(int(self.documents[current]))[0]
        sentence += draw - int(cumulative[current])
        spans: list[tuple[int, int, int]] = []
        size = 0
        for _ in range(n - 1):
            document = int(self.documents[current])
            start, doc_end = sentence, self.corpus.document_sentences(document)[1]
            while sentence < doc_end and size < room:
                length = int(self.sentence_lengths[sentence])
                if size and size + length - room > room - size:
                    break  # stopping short is closer to room than taking this sentence
                size += length
                sentence += 1
            if sentence > start:
                spans.append((document, start, sentence))
            if size >= room or sentence < doc_end:
                break
            current = (current + 1) % n
            if current == position:
                current = (current + 1) % n
            sentence = self.corpus.document_sentences(int(self.documents[current]))[0]
        return spans

    def __getitem__(self, key: int) -> dict:
        example = self.draw(key)
        example.pop("source", None)
        return example
