"""A corpus tokenised once into shards of flat token arrays on disk, read back memory-mapped.

``tokens-NNNNN.npy`` hold every sentence's ids back to back (uint16 when the vocabulary fits, else
uint32), each shard a run of whole documents of about ``shard_tokens`` tokens, so a corpus larger
than memory is written and read a shard at a time. ``sentence_offsets[i]:sentence_offsets[i+1]`` are
the global token positions of sentence ``i``; ``document_offsets[d]:document_offsets[d+1]`` are the
sentences of document ``d``. Sentence and document boundaries are what next-sentence prediction needs;
causal-LM packing joins documents with an end-of-text token when it reads them (``packing.py``), so
both objectives read the same shards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.corpus.base import Document
from lmforge.data.progress import progress_bar

FORMAT_VERSION = 2
DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard
_ENCODE_BATCH = 2048  # sentences sent to the Rust tokenizer at once


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def sentence_texts(document: Document) -> list[str]:
    """The sentences as they are tokenised: all but the first carry the space that joins them, so a
    byte-level tokenizer encodes the document exactly as it would the joined text (WordPiece ignores
    the space)."""
    return [sentence if i == 0 else " " + sentence for i, sentence in enumerate(document)]


class TokenizedCorpus:
    def __init__(
        self,
        tokens: np.ndarray | list[np.ndarray],
        sentence_offsets: np.ndarray,
        document_offsets: np.ndarray,
    ) -> None:
        self.shards = list(tokens) if isinstance(tokens, list) else [tokens]
        sizes = [len(shard) for shard in self.shards]
        self.shard_starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
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

    def document_lengths(self) -> np.ndarray:
        """Tokens in each document."""
        return np.diff(self.sentence_offsets[self.document_offsets])

    def document_sentences(self, document: int) -> tuple[int, int]:
        """First sentence and one past the last sentence of ``document``."""
        return int(self.document_offsets[document]), int(self.document_offsets[document + 1])

    def tokens_between(self, start: int, end: int) -> np.ndarray:
        """Global token positions ``start`` up to ``end``, across shard boundaries if need be."""
        shard = int(np.searchsorted(self.shard_starts, start, side="right")) - 1
        shard_end = int(self.shard_starts[shard + 1])
        offset = int(self.shard_starts[shard])
        if end <= shard_end:
            return self.shards[shard][start - offset : end - offset]
        pieces = []
        while start < end:
            take = min(end, shard_end)
            pieces.append(self.shards[shard][start - offset : take - offset])
            start, shard = take, shard + 1
            if shard < len(self.shards):
                offset, shard_end = int(self.shard_starts[shard]), int(self.shard_starts[shard + 1])
        return np.concatenate(pieces)

    def span(self, first_sentence: int, end_sentence: int) -> np.ndarray:
        """The tokens of sentences ``first_sentence`` up to (not including) ``end_sentence``."""
        return self.tokens_between(
            int(self.sentence_offsets[first_sentence]), int(self.sentence_offsets[end_sentence])
        )

    def document_tokens(self, document: int) -> np.ndarray:
        return self.span(*self.document_sentences(document))

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        tokenizer: Tokenizer,
        directory: Path,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
    ) -> TokenizedCorpus:
        """Tokenise ``documents`` (dropping sentences that yield no token) into shards in ``directory``.

        Memory holds one shard's tokens at a time, plus the offsets (8 bytes per sentence).
        """
        writer = _ShardWriter(directory, token_dtype(tokenizer.get_vocab_size()), shard_tokens)
        pending: list[str] = []
        pending_docs: list[int] = []
        started = time.perf_counter()

        def flush() -> None:
            encodings = tokenizer.encode_batch_fast(pending, add_special_tokens=False)
            cursor = 0
            for n_sentences in pending_docs:
                writer.add_document([e.ids for e in encodings[cursor : cursor + n_sentences] if e.ids])
                cursor += n_sentences
            pending.clear()
            pending_docs.clear()

        with progress_bar() as bar:
            task = bar.add_task("tokenising documents", total=None, rate="")

            def show(count: int) -> None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                rate = f"{count / elapsed:,.0f} docs/s, {writer.n_tokens / elapsed:,.0f} tokens/s"
                bar.update(task, completed=count, rate=rate)

            count = 0
            for count, document in enumerate(documents, start=1):
                pending.extend(sentence_texts(document))
                pending_docs.append(len(document))
                if len(pending) >= _ENCODE_BATCH:
                    flush()
                    show(count)
            if pending:
                flush()
            show(count)
        return writer.finish()

    @classmethod
    def load(cls, directory: Path) -> TokenizedCorpus:
        meta = json.loads((directory / "meta.json").read_text())
        shards = [np.load(directory / name, mmap_mode="r") for name in meta["shards"]]
        return cls(
            shards,
            np.load(directory / "sentence_offsets.npy"),
            np.load(directory / "document_offsets.npy"),
        )


class _ShardWriter:
    """Collects documents and writes a shard whenever ``shard_tokens`` tokens are waiting."""

    def __init__(self, directory: Path, dtype: np.dtype, shard_tokens: int) -> None:
        self.directory = directory
        self.dtype = dtype
        self.shard_tokens = shard_tokens
        self.waiting: list[np.ndarray] = []
        self.waiting_tokens = 0
        self.shards: list[str] = []
        self.sentence_lengths: list[int] = []
        self.document_sizes: list[int] = []
        self.n_tokens = 0

    def add_document(self, sentences: list[list[int]]) -> None:
        if not sentences:
            return
        for ids in sentences:
            self.waiting.append(np.asarray(ids, dtype=self.dtype))
            self.sentence_lengths.append(len(ids))
            self.waiting_tokens += len(ids)
            self.n_tokens += len(ids)
        self.document_sizes.append(len(sentences))
        if self.waiting_tokens >= self.shard_tokens:
            self._write_shard()

    def _write_shard(self) -> None:
        name = f"tokens-{len(self.shards):05d}.npy"
        np.save(
            self.directory / name, np.concatenate(self.waiting) if self.waiting else np.zeros(0, self.dtype)
        )
        self.shards.append(name)
        self.waiting, self.waiting_tokens = [], 0

    def finish(self) -> TokenizedCorpus:
        if self.waiting or not self.shards:
            self._write_shard()
        sentence_offsets = np.zeros(len(self.sentence_lengths) + 1, dtype=np.int64)
        np.cumsum(self.sentence_lengths, out=sentence_offsets[1:])
        document_offsets = np.zeros(len(self.document_sizes) + 1, dtype=np.int64)
        np.cumsum(self.document_sizes, out=document_offsets[1:])
        np.save(self.directory / "sentence_offsets.npy", sentence_offsets)
        np.save(self.directory / "document_offsets.npy", document_offsets)
        meta = {
            "format_version": FORMAT_VERSION,
            "documents": len(self.document_sizes),
            "sentences": len(self.sentence_lengths),
            "tokens": int(sentence_offsets[-1]),
            "dtype": self.dtype.name,
            "shards": self.shards,
        }
        (self.directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return TokenizedCorpus.load(self.directory)
