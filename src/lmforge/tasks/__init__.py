"""LightningModules: a backbone, the heads of an objective, their losses, metrics and optimiser."""

from lmforge.tasks.base import LanguageTask
from lmforge.tasks.causal_lm import CausalLMPretraining
from lmforge.tasks.classification import SequenceClassification
from lmforge.tasks.masked_lm import BertPretraining

TASKS = {"mlm": BertPretraining, "clm": CausalLMPretraining, "classify": SequenceClassification}

__all__ = ["TASKS", "BertPretraining", "CausalLMPretraining", "LanguageTask", "SequenceClassification"]
