"""Scores of generated texts against reference texts: exact match, chrF and ROUGE-L.

Exact match compares the texts with their whitespace collapsed (case and punctuation count). chrF is
torchmetrics' ``CHRFScore`` with character 1- to 6-grams only (chrF, not its default chrF++ with word
n-grams), beta 2 (recall weighs more), whitespace not counted, statistics summed over the whole corpus;
ROUGE-L its ``ROUGEScore`` F-measure of the longest common word subsequence (lower-cased words, no
stemming), averaged over the texts. All three are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import CHRFScore
from torchmetrics.text.rouge import ROUGEScore


def normalized(text: str) -> str:
    """``text`` with runs of whitespace made one space and the ends stripped."""
    return " ".join(text.split())


class GenerationMetrics(nn.Module):
    """Exact match, chrF and ROUGE-L of generations, accumulated over batches (``update``)."""

    def __init__(self) -> None:
        super().__init__()
        self.exact_match = MeanMetric()
        self.chrf = CHRFScore(n_char_order=6, n_word_order=0, beta=2.0)  # chrF, not chrF++
        self.rouge = ROUGEScore(rouge_keys="rougeL")
        self.count = 0

    def update(self, generated: Sequence[str], references: Sequence[str]) -> None:
        generated, references = [normalized(t) for t in generated], [normalized(t) for t in references]
        matches = [float(g == r) for g, r in zip(generated, references, strict=True)]
        self.exact_match.update(torch.tensor(matches))
        self.chrf.update(generated, [[r] for r in references])
        self.rouge.update(generated, references)
        self.count += len(generated)

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "exact_match": self.exact_match.compute(),
            "chrf": self.chrf.compute(),
            "rouge_l": self.rouge.compute()["rougeL_fmeasure"],
        }

    def reset(self) -> None:
        for metric in (self.exact_match, self.chrf, self.rouge):
            metric.reset()
        self.count = 0
