"""Pretraining objectives: the heads on top of a backbone and their losses."""

from lmforge.objectives.cross_entropy import linear_cross_entropy
from lmforge.objectives.mlm import IGNORE_INDEX, MaskedLMHead
from lmforge.objectives.nsp import NextSentenceHead

__all__ = ["IGNORE_INDEX", "MaskedLMHead", "NextSentenceHead", "linear_cross_entropy"]
