"""``data=`` presets name a corpus and shared settings; the objective decides which DataModule reads it."""

from __future__ import annotations

from typing import Any

from lmforge.data.causal_lm_datamodule import CausalLMDataModule
from lmforge.data.corpus_datamodule import CorpusDataModule
from lmforge.data.masked_lm_datamodule import MaskedLMDataModule
from lmforge.errors import ConfigError

# Settings only the masked-LM pipeline reads (sentence runs, pairing, masking, length grouping).
MASKED_LM_ONLY = ("val_draws", "short_seq_prob", "group_by_length", "pad_to_multiple_of")


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
        for key in MASKED_LM_ONLY:
            settings.pop(key, None)
        return CausalLMDataModule(tokenizer=tokenizer, **settings)
    raise ConfigError("objective.kind", f"objective.kind={kind!r} is not one of mlm, clm")
