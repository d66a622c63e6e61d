"""Corpus sources, chosen with ``data=`` (``stdlib``, ``text_files``, ``debian_docs``)."""

from lmforge.data.corpus.base import Corpus, Document
from lmforge.data.corpus.prepared import PreparedCorpus
from lmforge.data.corpus.stdlib import StdlibCorpus
from lmforge.data.corpus.text_files import TextFilesCorpus

__all__ = ["Corpus", "Document", "PreparedCorpus", "StdlibCorpus", "TextFilesCorpus"]
