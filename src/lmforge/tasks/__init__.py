"""LightningModules: a backbone, the heads of an objective, their losses, metrics and optimiser."""

from lmforge.tasks.causal_lm import CausalLMPretraining
from lmforge.tasks.masked_lm import BertPretraining

TASKS = {"mlm": BertPretraining, "clm": CausalLMPretraining}

__all__ = ["TASKS", "BertPretraining", "CausalLMPretraining"]
