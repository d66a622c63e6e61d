"""Parameter-efficient tuning: one registry applying any method to any lmforge backbone.

``peft_settings(values)`` reads the composed ``peft`` config group (``conf/peft/``) into the method's
checked settings, before anything is built; ``apply_peft(backbone, heads, settings)`` builds the method,
inserts its modules into the backbone in place and freezes what it does not train. Tasks and decoding
need no change: the backbones call the inserted modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from lmforge.errors import ConfigError
from lmforge.peft.adapter import AdapterTuning
from lmforge.peft.base import (
    MethodModule,
    MethodSettings,
    TuningMethod,
    merged_state_dict,
    parameter_counts,
    trainable_state_dict,
)
from lmforge.peft.ia3 import IA3
from lmforge.peft.lora import LoRA
from lmforge.peft.prefix import PrefixTuning
from lmforge.peft.prompt import PromptTuning
from lmforge.peft.ptuning import PTuning
from lmforge.peft.selective import BitFit, FullFineTuning, LinearProbe

PEFT_METHODS: dict[str, type[TuningMethod]] = {
    method.name: method
    for method in (
        FullFineTuning,
        LinearProbe,
        BitFit,
        AdapterTuning,
        PromptTuning,
        PTuning,
        PrefixTuning,
        LoRA,
        IA3,
    )
}


@dataclass(frozen=True)
class PeftSettings:
    """The ``peft`` group, checked: the method's name and its settings (``lr`` and its own)."""

    method: str
    settings: MethodSettings

    @property
    def lr(self) -> float | None:
        return self.settings.lr

    def to_dict(self) -> dict[str, Any]:
        """The plain form checkpoints keep (``hyper_parameters.peft``)."""
        return {"method": self.method, **dataclasses.asdict(self.settings)}


def peft_settings(values: Mapping[str, Any] | PeftSettings | None) -> PeftSettings:
    """The method ``values["method"]`` names, with its settings checked (``None``: full fine-tuning)."""
    if isinstance(values, PeftSettings):
        return values
    values = dict(values) if values is not None else {"method": "none"}
    name = values.get("method")
    if name not in PEFT_METHODS:
        raise ConfigError("peft.method", f"peft.method={name!r} is not one of {', '.join(PEFT_METHODS)}")
    method = PEFT_METHODS[name]
    return PeftSettings(name, method.settings_type.from_dict(name, values))


def apply_peft(
    backbone: nn.Module,
    heads: Sequence[nn.Module],
    settings: Mapping[str, Any] | PeftSettings | None,
    tokenizer: Any = None,
) -> TuningMethod:
    """Apply the method ``settings`` names to ``backbone`` in place and return it.

    ``settings``: the ``peft`` group (a plain dict: ``method``, ``lr`` and the method's
    hyper-parameters) or its checked ``PeftSettings``; ``heads``: the task's heads, which always train;
    ``tokenizer``: needed only by prompt tuning with ``init: text``.
    """
    checked = peft_settings(settings)
    method = PEFT_METHODS[checked.method](checked.settings)
    method.apply(backbone, heads, tokenizer)
    return method


__all__ = [
    "PEFT_METHODS",
    "MethodModule",
    "MethodSettings",
    "PeftSettings",
    "TuningMethod",
    "apply_peft",
    "merged_state_dict",
    "parameter_counts",
    "peft_settings",
    "trainable_state_dict",
]
