"""Nearest neighbours by TF-IDF cosine similarity, with torch sparse CSR matrices (no scipy here).

Words are lower-cased runs of letters and digits; weights are raw counts times the smoothed inverse
document frequency ln((1 + n) / (1 + df)) + 1, rows scaled to unit length. Similarities are computed
for a chunk of queries at a time, so memory stays at about ``chunk`` x ``len(documents)`` floats.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TfidfIndex:
    """The documents as unit TF-IDF rows; ``nearest`` finds the most similar allowed one per query."""

    def __init__(self, documents: Sequence[str]) -> None:
        counts = [Counter(words(text)) for text in documents]
        self.vocabulary = {word: i for i, word in enumerate(sorted({w for c in counts for w in c}))}
        document_frequency = np.zeros(len(self.vocabulary), dtype=np.float64)
        for count in counts:
            document_frequency[[self.vocabulary[word] for word in count]] += 1
        self.idf = np.log((1 + len(documents)) / (1 + document_frequency)) + 1
        self.indptr, self.columns, self.values = self.rows(counts)  # documents x vocabulary, CSR

    def rows(self, counts: Sequence[Counter]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit TF-IDF rows of word counts as CSR arrays; words outside the vocabulary are left out."""
        indptr, columns, values = [0], [], []
        for count in counts:
            known = sorted((self.vocabulary[w], n) for w, n in count.items() if w in self.vocabulary)
            column = np.array([c for c, _ in known], dtype=np.int64)
            weight = np.array([n for _, n in known], dtype=np.float64) * self.idf[column]
            norm = np.linalg.norm(weight)
            columns.append(column)
            values.append(weight / norm if norm > 0 else weight)
            indptr.append(indptr[-1] + len(column))
        return (
            np.array(indptr, dtype=np.int64),
            np.concatenate([np.zeros(0, dtype=np.int64), *columns]),
            np.concatenate([np.zeros(0, dtype=np.float32), *values]).astype(np.float32),
        )

    def matrix(self, documents: np.ndarray) -> torch.Tensor:
        """The rows of ``documents`` (indices, in that order) as a sparse CSR tensor."""
        starts, stops = self.indptr[documents], self.indptr[documents + 1]
        take = np.concatenate([np.zeros(0, dtype=np.int64), *map(np.arange, starts, stops)])
        indptr = np.concatenate([[0], np.cumsum(stops - starts)])
        with warnings.catch_warnings():  # CSR is "beta" in torch, and 10x faster than COO here
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.from_numpy(indptr),
                torch.from_numpy(self.columns[take]),
                torch.from_numpy(self.values[take]),
                size=(len(documents), len(self.vocabulary)),
                check_invariants=True,
            )

    def nearest(
        self,
        queries: Sequence[str],
        differ: tuple[np.ndarray, np.ndarray],
        agree: tuple[np.ndarray, np.ndarray] | None = None,
        chunk: int = 512,
    ) -> np.ndarray:
        """For each query, the index of the most similar document that is allowed, or -1 if none is.

        ``differ = (document_keys, query_keys)``: document d is not allowed for query q when
        ``document_keys[d] == query_keys[q]`` (the query's own document and copies of its text).
        ``agree``, the same shape: d is allowed only when the keys are equal (the same book); each
        key's queries are then compared with that key's documents only.
        """
        n_documents = len(self.indptr) - 1
        if agree is None:
            blocks = [(np.arange(n_documents), np.arange(len(queries)))]
        else:
            document_agree, query_agree = np.asarray(agree[0]), np.asarray(agree[1])
            blocks = [
                (np.flatnonzero(document_agree == key), np.flatnonzero(query_agree == key))
                for key in np.unique(query_agree)
            ]
        document_differ, query_differ = np.asarray(differ[0]), np.asarray(differ[1])
        found = np.full(len(queries), -1, dtype=np.int64)
        for documents, members in blocks:
            if len(documents) == 0:
                continue
            matrix = self.matrix(documents)
            keys = torch.from_numpy(document_differ[documents])
            for start in range(0, len(members), chunk):
                part = members[start : start + chunk]
                indptr, columns, values = self.rows([Counter(words(queries[i])) for i in part])
                dense = torch.zeros(len(part), len(self.vocabulary))
                dense[torch.from_numpy(np.repeat(np.arange(len(part)), np.diff(indptr))), columns] = (
                    torch.from_numpy(values)
                )
                scores = matrix @ dense.T  # documents x queries cosine similarities
                banned = keys[:, None] == torch.from_numpy(query_differ[part])[None, :]
                best, index = scores.masked_fill_(banned, -torch.inf).max(dim=0)
                found[part] = np.where(torch.isinf(best).numpy(), -1, documents[index.numpy()])
        return found
