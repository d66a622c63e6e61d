"""Data pipeline: corpora, tokenizers, token arrays, examples, masking and the DataModule."""

from lmforge.data.datamodule import PretrainingDataModule

__all__ = ["PretrainingDataModule"]
