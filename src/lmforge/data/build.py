"""``data=`` presets name a corpus and shared settings; the objective decides which DataModule reads it."""

from __future__ import annotations

import inspect
from typing import Any

from lmforge.data.causal_lm_datamodule import CausalLMDataModule
from lmforge.data.corpus_datamodule import CorpusDataModule
from lmforge.data.masked_lm_datamodule import MaskedLMDataModule
from lmforge.errors import ConfigError

# What every pipeline reads; a data preset's other keys (val_draws, short_seq_prob, ...) are masked-LM only.
SHARED_SETTINGS = frozenset(inspect.signature(CorpusDataModule.__init__).parameters) - {"self"}


def build_datamodule(objective: dict[str, Any], **settings: Any) -> CorpusDataModule:
    """The DataModule for ``objective['kind']`` (``mlm`` or ``clm``) built from ``data`` settings."""
    kind = objective.get("kind")
    tokenizer = {**settings.pop("tokenizer"), "kind": objective.get("tokenizer", "wordpiece")}
    if kind == "mlm":
        masking = {
            key: objective[key] for key in ("mlm_probability", "mask_token_ratio", "random_token_ratio")
        }
        return MaskedLMDataModule(tokenizer=tokenizer, nsp=bool(objective.get("nsp")), **masking, **settings)
    if kind == "clm":
        shared = {key: value for key, value in settings.items() if key in SHARED_SETTINGS}
        return CausalLMDataModule(tokenizer=tokenizer, **shared)
    raise ConfigError("objective.kind", f"objective.kind={kind!r} is not one of mlm, clm")
