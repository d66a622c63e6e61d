"""LightningModules: a backbone, the heads of an objective, their losses, metrics and optimiser.

Which task an ``objective.kind`` trains is the objective registry's to say (``lmforge.run.registry``).
"""

from lmforge.tasks.base import LanguageTask
from lmforge.tasks.causal_lm import CausalLMPretraining
from lmforge.tasks.classification import SequenceClassification
from lmforge.tasks.instruction_tuning import InstructionTuning
from lmforge.tasks.masked_lm import BertPretraining
from lmforge.tasks.prompt_lm import PromptLM

__all__ = [
    "BertPretraining",
    "CausalLMPretraining",
    "InstructionTuning",
    "LanguageTask",
    "PromptLM",
    "SequenceClassification",
]
