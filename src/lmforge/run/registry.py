"""The objective registry: what each ``objective.kind`` trains, on which models, from which data.

Every other place reads this table: the run spec checks a run against it, the builders take the task
and DataModule from it, checkpoints are rebuilt through it, and ``conf/objective/*.yaml`` presets
name one of its kinds. A new objective is one task (``lmforge/tasks/``), its settings class (the
task's ``objective_type``), one entry here and one preset in ``conf/objective/``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl

from lmforge.data import CausalLMDataModule, CorpusDataModule, MaskedLMDataModule
from lmforge.data.labeled import ClassificationDataModule, PromptDataModule
from lmforge.data.sft import InstructionDataModule
from lmforge.errors import ConfigError
from lmforge.objectives.settings import (
    InstructionTuningSettings,
    MaskedLMSettings,
    ObjectiveSettings,
    PromptLMSettings,
)
from lmforge.tasks import (
    BertPretraining,
    CausalLMPretraining,
    InstructionTuning,
    LanguageTask,
    PromptLM,
    SequenceClassification,
)

# What a data preset gives: a pretraining corpus (data=stdlib, text_files, ...), a labeled set
# (data=trec, csv, ...) or prompt/response pairs (data=pairs_jsonl, ...); the key that holds it tells
# them apart. Each with what it is, for errors.
CORPUS, LABELED, PAIRS = "corpus", "source", "pairs"
DATA_KINDS = {
    CORPUS: "a pretraining corpus (data=stdlib, data=text_files, ...)",
    LABELED: "a labeled set (data=trec, data=csv, ...)",
    PAIRS: "prompt/response pairs (data=pairs_jsonl, data=gcide_definitions, ...)",
}
MODEL_FAMILIES = ("encoder", "decoder", "any")


@dataclass(frozen=True)
class Objective:
    """One kind of objective: its task, the models it trains, the data it reads and how."""

    kind: str
    task: type[LanguageTask]
    models: str  # encoder | decoder | any
    reads: str  # CORPUS, LABELED or PAIRS: the key of the data preset that holds the text
    datamodule: Callable[[dict[str, Any], ObjectiveSettings], pl.LightningDataModule]
    about: str  # what it trains, for errors ("cannot train <about>")
    lm_head: bool = False  # on a decoder, its head is the LM head (the token embedding when tied)

    @property
    def settings_type(self) -> type[ObjectiveSettings]:
        return self.task.objective_type

    def settings(self, values: Mapping[str, Any]) -> ObjectiveSettings:
        return self.settings_type.from_dict(values)


# What every pretraining DataModule takes; a data preset's other keys (val_draws, ...) are masked-LM only.
SHARED_CORPUS_SETTINGS = frozenset(inspect.signature(CorpusDataModule.__init__).parameters) - {"self"}


def masked_lm_data(data: dict[str, Any], objective: ObjectiveSettings) -> MaskedLMDataModule:
    assert isinstance(objective, MaskedLMSettings)
    return MaskedLMDataModule(nsp=objective.nsp, **objective.masking(), **data)


def causal_lm_data(data: dict[str, Any], objective: ObjectiveSettings) -> CausalLMDataModule:
    return CausalLMDataModule(**{key: value for key, value in data.items() if key in SHARED_CORPUS_SETTINGS})


def classification_data(data: dict[str, Any], objective: ObjectiveSettings) -> ClassificationDataModule:
    return ClassificationDataModule(**data)


def prompt_data(data: dict[str, Any], objective: ObjectiveSettings) -> PromptDataModule:
    assert isinstance(objective, PromptLMSettings)
    return PromptDataModule(template=objective.template, **data)


def instruction_data(data: dict[str, Any], objective: ObjectiveSettings) -> InstructionDataModule:
    assert isinstance(objective, InstructionTuningSettings)
    return InstructionDataModule(template=objective.template, **data)


OBJECTIVES: dict[str, Objective] = {
    entry.kind: entry
    for entry in (
        Objective(
            "mlm",
            BertPretraining,
            "encoder",
            CORPUS,
            masked_lm_data,
            "a masked-LM objective",
        ),
        Objective("clm", CausalLMPretraining, "decoder", CORPUS, causal_lm_data, "causal LM", lm_head=True),
        Objective(
            "classify",
            SequenceClassification,
            "any",
            LABELED,
            classification_data,
            "a classifier (one label per text or text pair; the labeled data presets choose it)",
        ),
        Objective(
            "prompt_lm",
            PromptLM,
            "any",
            LABELED,
            prompt_data,
            "prompt-based classification (a template and its label words, scored by the model's LM head)",
            lm_head=True,
        ),
        Objective(
            "sft",
            InstructionTuning,
            "decoder",
            PAIRS,
            instruction_data,
            "instruction tuning (prompt/response pairs, the loss on the responses)",
            lm_head=True,
        ),
    )
}


def objective(kind: Any, key: str = "objective.kind") -> Objective:
    """The registry entry of ``kind``, or a ``ConfigError`` listing the kinds there are."""
    if kind not in OBJECTIVES:
        raise ConfigError(key, f"{key}={kind!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind]
