"""What every corpus offers the pipeline: a cache key, a cheap up-front check, and its documents."""

from __future__ import annotations

import hashlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

Document = list[str]  # the sentences of one document, in order


class Corpus(ABC):
    """A source of documents. Subclasses are built from ``data.corpus`` with Hydra's instantiate."""

    name: str
    max_documents: int | None = None  # read at most this many documents (None: all)

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that decides the documents produced: the cache key is a hash of it."""

    @abstractmethod
    def check(self) -> None:
        """Fail fast with a ``ConfigError`` when the source is missing or empty (no reading of text)."""

    @abstractmethod
    def all_documents(self) -> Iterator[Document]:
        """Yield every document in a deterministic order, showing progress."""

    def documents(self) -> Iterator[Document]:
        """``all_documents()`` up to ``max_documents`` (a cap reads no further)."""
        return itertools.islice(self.all_documents(), self.max_documents)

    def unique_documents(self) -> Iterator[Document]:
        """``documents()`` without empty ones and without exact repeats (repeats leak across splits)."""
        seen: set[bytes] = set()
        for document in self.documents():
            if not document:
                continue
            digest = hashlib.blake2b("\n".join(document).encode(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                yield document
