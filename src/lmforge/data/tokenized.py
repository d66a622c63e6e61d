"""A corpus tokenised once into flat arrays on disk, read back memory-mapped.

``tokens`` holds every sentence's ids back to back; ``sentence_offsets[i]:sentence_offsets[i+1]`` is
sentence ``i``; ``document_offsets[d]:document_offsets[d+1]`` are the sentences of document ``d``.
Document and sentence boundaries are what next-sentence prediction needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.corpus.base import Document
from lmforge.data.progress import track

FORMAT_VERSION = 1
_ENCODE_BATCH = 2048  # sentences sent to the Rust tokenizer at once


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


class TokenizedCorpus:
    def __init__(self, tokens: np.ndarray, sentence_offsets: np.ndarray, document_offsets: np.ndarray):
        self.tokens = tokens
        self.sentence_offsets = sentence_offsets
        self.document_offsets = document_offsets

    @property
    def n_documents(self) -> int:
        return len(self.document_offsets) - 1

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.sentence_offsets[-1])

    def sentence_lengths(self) -> np.ndarray:
        return np.diff(self.sentence_offsets)

    def document_sentences(self, document: int) -> tuple[int, int]:
        """First sentence and one past the last sentence of ``document``."""
        return int(self.document_offsets[document]), int(self.document_offsets[document + 1])

    def span(self, first_sentence: int, end_sentence: int) -> np.ndarray:
        """The tokens of sentences ``first_sentence`` up to (not including) ``end_sentence``."""
        start = self.sentence_offsets[first_sentence]
        end = self.sentence_offsets[end_sentence]
        return self.tokens[start:end]

    @classmethod
    def build(cls, documents: Iterable[Document], tokenizer: Tokenizer, directory: Path) -> TokenizedCorpus:
        """Tokenise ``documents`` (dropping sentences that yield no token) and write the arrays."""
        dtype = token_dtype(tokenizer.get_vocab_size())
        chunks: list[np.ndarray] = []
        sentence_lengths: list[int] = []
        document_sizes: list[int] = []
        pending: list[str] = []
        pending_docs: list[int] = []

        def flush() -> None:
            encodings = tokenizer.encode_batch_fast(pending, add_special_tokens=False)
            cursor = 0
            for n_sentences in pending_docs:
                kept = 0
                for encoding in encodings[cursor : cursor + n_sentences]:
                    if encoding.ids:
                        chunks.append(np.asarray(encoding.ids, dtype=dtype))
                        sentence_lengths.append(len(encoding.ids))
                        kept += 1
                cursor += n_sentences
                if kept:
                    document_sizes.append(kept)
            pending.clear()
            pending_docs.clear()

        for document in track(documents, "tokenising documents", total=None, unit="docs"):
            pending.extend(document)
            pending_docs.append(len(document))
            if len(pending) >= _ENCODE_BATCH:
                flush()
        if pending:
            flush()

        tokens = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
        sentence_offsets = np.zeros(len(sentence_lengths) + 1, dtype=np.int64)
        np.cumsum(sentence_lengths, out=sentence_offsets[1:])
        document_offsets = np.zeros(len(document_sizes) + 1, dtype=np.int64)
        np.cumsum(document_sizes, out=document_offsets[1:])
        np.save(directory / "tokens.npy", tokens)
        np.save(directory / "sentence_offsets.npy", sentence_offsets)
        np.save(directory / "document_offsets.npy", document_offsets)
        meta = {
            "format_version": FORMAT_VERSION,
            "documents": len(document_sizes),
            "sentences": len(sentence_lengths),
            "tokens": int(sentence_offsets[-1]),
            "dtype": dtype.name,
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return cls(tokens, sentence_offsets, document_offsets)

    @classmethod
    def load(cls, directory: Path) -> TokenizedCorpus:
        return cls(
            np.load(directory / "tokens.npy", mmap_mode="r"),
            np.load(directory / "sentence_offsets.npy"),
            np.load(directory / "document_offsets.npy"),
        )
