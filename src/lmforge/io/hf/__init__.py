"""Hugging Face checkpoints in our models (``model.init_from=hf:<folder>``) and back (``lmforge export``).

Import reads a local folder (``config.json``, the weights, the tokenizer), picks the family from
``architectures`` / ``model_type``, derives our model config from ``config.json`` and renames the
tensors into the layout of one of our checkpoints (``backbone.``, ``mlm_head.``, ``nsp_head.``), so
``lmforge.io.init_from.load_pretrained`` loads them as it loads our own. Supported: BERT, GPT-2, LLaMA.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from lmforge import models
from lmforge.errors import ConfigError
from lmforge.io.hf.bert import BertFamily
from lmforge.io.hf.folder import (
    PREFIX,
    check_end_of_text,
    folder_of,
    is_hf,
    read_config,
    read_tokenizer,
    read_weights,
)
from lmforge.io.hf.gpt2 import GPT2Family
from lmforge.io.hf.llama import LlamaFamily
from lmforge.io.hf.mapping import Family, import_state
from lmforge.io.tokenizers import without_padding_and_truncation
from lmforge.models import build_backbone

log = logging.getLogger("lmforge.io.hf")

FAMILIES: tuple[Family, ...] = (BertFamily(), GPT2Family(), LlamaFamily())
KEY = "model.init_from"


def family_of(hf: dict[str, Any], source: str) -> Family:
    """The family a ``config.json`` describes, by its ``architectures`` (else its ``model_type``)."""
    architectures = hf.get("architectures") or []
    for family in FAMILIES:
        if any(name in family.architectures for name in architectures) or (
            not architectures and hf.get("model_type") in family.model_types
        ):
            return family
    supported = ", ".join(name for family in FAMILIES for name in family.architectures)
    raise ConfigError(
        KEY,
        f"{source} holds a {', '.join(architectures) or hf.get('model_type', 'model of unknown type')}, "
        f"which lmforge cannot read; supported: {supported}",
    )


def family_for_config(config: Any) -> Family:
    """The family an export of one of our model configs takes: by its class, and for a plain
    ``DecoderConfig`` the first family whose layout it fits (GPT-2, then LLaMA)."""
    name = type(config).__name__
    candidates = [family for family in FAMILIES if name in family.our_configs]
    for family in candidates[:-1]:
        try:
            family.config_to_hf(config, set())
            return family
        except ConfigError:
            continue
    if not candidates:
        raise ConfigError(
            None, f"a {name} has no Hugging Face counterpart here (BertConfig, GPTConfig, LlamaConfig do)"
        )
    return candidates[-1]  # its own config_to_hf says what does not fit


def read_folder(path: str | Path) -> tuple[Path, dict[str, Any], Family, dict[str, Any]]:
    """The folder ``path`` names, its ``config.json``, its family and our model fields derived from it;
    what config.json lacks or holds that we cannot read is refused naming the folder and the key."""
    folder = folder_of(path)
    hf = read_config(folder)
    family = family_of(hf, str(folder))
    try:
        settings = family.config_from_hf(hf)
    except KeyError as error:
        raise ConfigError(
            KEY, f"{folder}/config.json lacks {error}, which a {family.name} config.json holds"
        ) from None
    except ConfigError as error:
        raise ConfigError(error.key, f"{folder}/config.json: {error}") from None
    return folder, hf, family, settings


def our_config(family: Family, settings: dict[str, Any]) -> Any:
    """Our model config of the family's class with the fields derived from a config.json."""
    return getattr(models, family.target.rsplit(".", 1)[-1])(**settings)


def check_folder(path: str) -> None:
    """Everything ``model.init_from=hf:<folder>`` needs from the folder, checked before any data is read
    (``train.py``'s ``check_run``): config.json and its family, every weight file present, whole and
    readable, the tensors named and shaped as config.json says (their shapes only, no data read), and
    a tokenizer our pipelines can use."""
    folder, hf, family, settings = read_folder(path)
    import_state(
        family, our_config(family, settings), hf, read_weights(folder, shapes_only=True), str(folder)
    )
    check_end_of_text(read_tokenizer(folder), folder)


def derive_model_config(model: dict[str, Any]) -> dict[str, Any]:
    """A run's ``model`` settings with the shape of the ``hf:`` folder in ``model.init_from``.

    The preset chooses the family (and what config.json does not say, such as ``init_strict``); its
    sizes are replaced by the folder's, so users never match them by hand. Logged in one line.
    """
    path = model.get("init_from")
    if not is_hf(path):
        return model
    folder, _, family, derived = read_folder(path)
    preset = str(model.get("_target_", "")).rsplit(".", 1)[-1]
    if preset not in family.our_configs:
        raise ConfigError(
            "model",
            f"model.init_from={path} holds a {family.name} model, but this run's model preset is a {preset}: "
            f"choose a {family.name} preset ({' / '.join(family.our_configs)})",
        )
    changed = [
        f"{key} {model.get(key)} -> {value}" for key, value in derived.items() if model.get(key) != value
    ]
    log.info("model shape from %s/config.json: %s", folder, ", ".join(changed) or "as the preset")
    return {**model, **derived}


def pretrained_checkpoint(path: str, config: Any, shapes_only: bool = False) -> dict[str, Any]:
    """The folder's weights as one of our checkpoints would hold them: ``state_dict`` (task prefixes)
    and ``hyper_parameters.model`` (for the shape check of ``load_pretrained``); ``shapes_only``:
    tensors on the meta device, no data read."""
    folder, hf, family, settings = read_folder(path)
    if type(config).__name__ not in family.our_configs:
        raise ConfigError(
            KEY, f"{path} holds a {family.name} model; this run's model is a {type(config).__name__}"
        )
    # the folder's own shape: what its tensors are checked against (load_pretrained compares it to ours)
    source_config = type(config)(**{**config.to_dict(), **settings, "init_from": None})
    state = import_state(family, source_config, hf, read_weights(folder, shapes_only), str(folder))
    return {"state_dict": state, "hyper_parameters": {"model": settings}}


def pretrained_tokenizer(path: str) -> Tokenizer:
    """The folder's tokenizer, checked to have what our pipelines need (see ``folder.read_tokenizer``),
    its own padding and truncation switched off (our pipelines pack, cut and pad themselves)."""
    folder = folder_of(path)
    tokenizer = read_tokenizer(folder)
    check_end_of_text(tokenizer, folder)
    return without_padding_and_truncation(tokenizer, f"the tokenizer of {folder}")


def load_backbone(path: str | Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A backbone of ours with the folder's weights (eval mode), and the converted head tensors
    (``mlm_head.*``, ``nsp_head.*``, ``classifier.*``) for whoever wants them."""
    _, _, family, settings = read_folder(path)
    config = our_config(family, settings)
    state = pretrained_checkpoint(str(path), config)["state_dict"]
    backbone = build_backbone(config)
    own = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    backbone.load_state_dict(own, strict=True)
    return backbone.eval(), {k: v for k, v in state.items() if not k.startswith("backbone.")}


__all__ = [
    "FAMILIES",
    "PREFIX",
    "check_folder",
    "derive_model_config",
    "family_for_config",
    "family_of",
    "is_hf",
    "load_backbone",
    "pretrained_checkpoint",
    "pretrained_tokenizer",
]
