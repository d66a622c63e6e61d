"""Parameter-efficient tuning: one registry applying any method to any lmforge backbone.

``apply_peft(backbone, heads, settings)`` reads the composed ``peft`` config group (``conf/peft/``),
builds the method it names, inserts the method's modules into the backbone in place and freezes what
the method does not train. Tasks and decoding need no change: the backbones call the inserted modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from lmforge.errors import ConfigError
from lmforge.peft.adapter import AdapterTuning
from lmforge.peft.base import (
    MethodModule,
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


def apply_peft(
    backbone: nn.Module, heads: Sequence[nn.Module], settings: Mapping[str, Any], tokenizer: Any = None
) -> TuningMethod:
    """Apply the method ``settings["method"]`` to ``backbone`` in place and return it.

    ``settings``: the ``peft`` group as a plain dict (``method``, ``lr`` and the method's
    hyper-parameters); ``heads``: the task's heads, which always train; ``tokenizer``: needed only by
    prompt tuning with ``init: text``.
    """
    name = settings.get("method")
    if name not in PEFT_METHODS:
        raise ConfigError("peft.method", f"peft.method={name!r} is not one of {', '.join(PEFT_METHODS)}")
    method = PEFT_METHODS[name](settings)
    method.apply(backbone, heads, tokenizer)
    return method


__all__ = [
    "PEFT_METHODS",
    "MethodModule",
    "TuningMethod",
    "apply_peft",
    "merged_state_dict",
    "parameter_counts",
    "trainable_state_dict",
]
