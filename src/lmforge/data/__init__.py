"""Data pipeline: corpora, tokenizers, token shards, examples, masking, packing and the DataModules."""

from lmforge.data.causal_lm_datamodule import CausalLMDataModule
from lmforge.data.corpus_datamodule import CorpusDataModule
from lmforge.data.masked_lm_datamodule import MaskedLMDataModule

__all__ = ["CausalLMDataModule", "CorpusDataModule", "MaskedLMDataModule"]
