"""Labeled sets for fine-tuning a classifier: the user's CSV / JSON lines files and the sets prepared by
``make data-finetune``, their splits, encoding and the ``ClassificationDataModule`` (``PromptDataModule``:
the same sets put into a prompt template)."""

from lmforge.data.labeled.datamodule import ClassificationDataModule
from lmforge.data.labeled.examples import LabeledExample, deduplicate
from lmforge.data.labeled.files import CsvSource, JsonlSource
from lmforge.data.labeled.prepared import PreparedSetSource
from lmforge.data.labeled.prompting import PromptDataModule
from lmforge.data.labeled.source import LabeledSource

__all__ = [
    "ClassificationDataModule",
    "CsvSource",
    "JsonlSource",
    "LabeledExample",
    "LabeledSource",
    "PreparedSetSource",
    "PromptDataModule",
    "deduplicate",
]
