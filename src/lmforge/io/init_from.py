"""Starting a model from one of our checkpoints (``model.init_from``): read, match, load, report.

``model.init_from=hf:<folder>`` names a Hugging Face model folder instead (``lmforge.io.hf``): it is
converted into the same layout and then matched and loaded the same way.

A pretraining checkpoint holds the backbone under ``backbone.`` and its objective's heads beside it.
Fine-tuning loads the backbone (and, for BERT, the NSP head's pooler into the classifier's pooler),
reports which keys it left out, and refuses a backbone of another shape unless ``model.init_strict``
is false, so a mistyped preset never trains on half-loaded weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from lmforge.errors import ConfigError
from lmforge.io import hf
from lmforge.io.checkpoints import checkpoint_tokenizer, is_distributed_checkpoint, read_checkpoint

log = logging.getLogger("lmforge.io.init_from")

# Keys of the model config that decide the shapes of the weights; the rest (dropout, init) may differ.
SHAPE_KEYS = (
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "d_ff",
    "max_seq_len",
    "type_vocab_size",
    "position",
    "norm",
    "norm_position",
    "gated",
    "bias",
    "tie_embeddings",
)


def check_init_from(path: str | None) -> None:
    """``model.init_from`` names one of our checkpoints (a file, or a distributed checkpoint's folder)
    or ``hf:<a folder holding config.json>``; checked before any work."""
    if path is None:
        return
    if hf.is_hf(path):
        hf.folder_of(path)  # a folder holding config.json, or a ConfigError saying which
    elif not (Path(path).is_file() or is_distributed_checkpoint(path)):
        raise ConfigError(
            "model.init_from",
            f"model.init_from={path} is not a file: give one of our checkpoints (.ckpt), e.g. "
            "logs/pretrain/runs/<date>_<time>/checkpoints/last.ckpt, or hf:<a Hugging Face model folder>",
        )


def pretrained_tokenizer(path: str) -> Tokenizer:
    """The tokenizer stored in the checkpoint ``model.init_from`` names: fine-tuning must read text as
    pretraining did."""
    if hf.is_hf(path):  # a Hugging Face folder: its tokenizer.json, vocab.txt or vocab.json + merges.txt
        return hf.pretrained_tokenizer(path)
    tokenizer = checkpoint_tokenizer(read_checkpoint(path, "model.init_from"))
    if tokenizer is None:
        raise ConfigError("model.init_from", f"{path} holds no tokenizer: is it a checkpoint of ours?")
    return tokenizer


def pretrained_names(path: str, config: Any) -> set[str]:
    """The tensors ``model.init_from`` holds, named as in our checkpoints (``mlm_head.bias``), read
    without their data (a Hugging Face folder is renamed into our layout)."""
    if hf.is_hf(path):
        return set(hf.pretrained_checkpoint(path, config, shapes_only=True)["state_dict"])
    return set(read_checkpoint(path, "model.init_from").get("state_dict", {}))  # memory-mapped


def checkpoint_model(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return dict(checkpoint.get("hyper_parameters", {}).get("model", {}))


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in our module, absent from the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, absent from our module
    mismatched: list[str] = field(default_factory=list)  # both, with different shapes
    unused: list[str] = field(default_factory=list)  # parts of the checkpoint nothing loaded

    def problems(self) -> list[str]:
        return [*self.missing, *self.unexpected, *self.mismatched]


def check_shapes(config: Any, saved: dict[str, Any], path: str, setting: str = "model.init_from") -> None:
    """Refuse a checkpoint whose recorded model differs in shape; ``setting`` is the one that named it
    (``model.init_from`` to start from it, ``ckpt_path`` to resume it)."""
    differ = [
        f"{key}={getattr(config, key)} (checkpoint: {saved[key]})"
        for key in SHAPE_KEYS
        if key in saved and hasattr(config, key) and getattr(config, key) != saved[key]
    ]
    if saved.get("_target_") and saved["_target_"].rsplit(".", 1)[-1] != type(config).__name__:
        differ.insert(0, f"a {type(config).__name__} (checkpoint: {saved['_target_'].rsplit('.', 1)[-1]})")
    if differ:
        otherwise = (
            "or set model.init_strict=false to load only what fits"
            if setting == "model.init_from"
            else "or start a new run from what fits: model.init_from=<it> model.init_strict=false"
        )
        raise ConfigError(
            setting,
            f"{path} holds another model: this run's model has " + ", ".join(differ) + ". Pick the preset "
            "it was trained with (its sizes are in the checkpoint's run folder, .hydra/config.yaml), "
            + otherwise,
        )


def match(
    targets: dict[str, nn.Module], state: dict[str, torch.Tensor]
) -> tuple[LoadReport, dict[str, dict[str, torch.Tensor]]]:
    """Pair ``state`` tensors with each target module by checkpoint prefix; copy nothing yet."""
    report, fitting = LoadReport(), {}
    for prefix, module in targets.items():
        own = module.state_dict()
        found = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        fitting[prefix] = {}
        for key, value in found.items():
            if key not in own:
                report.unexpected.append(prefix + key)
            elif own[key].shape != value.shape:
                report.mismatched.append(
                    f"{prefix}{key} (ours {tuple(own[key].shape)}, checkpoint {tuple(value.shape)})"
                )
            else:
                fitting[prefix][key] = value
                report.loaded.append(prefix + key)
        report.missing.extend(prefix + key for key in own if key not in found)
    return report, fitting


def unused_parts(state: dict[str, torch.Tensor], used: set[str]) -> list[str]:
    """The checkpoint's heads nothing loaded, or the parts of a head that was partly loaded."""
    touched = {key.split(".", 1)[0] for key in used}
    unused = set()
    for key in state:
        if key not in used:
            head, rest = [*key.split(".", 1), ""][:2]
            unused.add(f"{head}.{rest.split('.', 1)[0]}" if head in touched else head)
    return sorted(unused)


def load_pretrained(
    path: str,
    config: Any,
    targets: dict[str, nn.Module],
    strict: bool = True,
    optional: dict[str, nn.Module] | None = None,
) -> LoadReport:
    """Load ``path``'s weights into ``targets`` (checkpoint prefix -> module) and report.

    With ``strict``, a backbone of other shapes, or any missing, unexpected or mismatched key, is a
    ``ConfigError`` raised before anything is copied; without it, what fits is loaded and the rest
    named in a warning. ``optional`` targets (a fine-tuned classifier) load only when the checkpoint
    holds all of them in the same shapes (the same label count); otherwise they start fresh.
    """
    # A Hugging Face folder is converted, all of it checked, into the layout of our checkpoints.
    if hf.is_hf(path):
        checkpoint = hf.pretrained_checkpoint(path, config)
    else:
        checkpoint = read_checkpoint(path, "model.init_from")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ConfigError(
            "model.init_from", f"{path} holds no state_dict: is it a Lightning checkpoint of ours?"
        )
    if strict:
        check_shapes(config, checkpoint_model(checkpoint), path)
    report, fitting = match(targets, state)
    problems = report.problems()
    if strict and problems:  # nothing is copied unless everything fits
        shown = ", ".join(problems[:6]) + (" ..." if len(problems) > 6 else "")
        raise ConfigError(
            "model.init_from",
            f"{path} does not fit this model ({len(problems)} keys missing, unexpected or of another "
            f"shape: {shown}); set model.init_strict=false to load only what fits",
        )
    for prefix, module in (optional or {}).items():
        found, part = match({prefix: module}, state)
        if found.loaded and not found.problems():
            fitting[prefix] = part[prefix]
            targets = {**targets, prefix: module}
            report.loaded.extend(found.loaded)
        elif found.loaded or found.mismatched:
            log.info(
                "model.init_from: %s starts fresh: %s", prefix.rstrip("."), "; ".join(found.problems()[:2])
            )
    for prefix, module in targets.items():
        module.load_state_dict(fitting[prefix], strict=False)
    used = {key for key in state if key.startswith(tuple(targets))}
    report.unused = unused_parts(state, used)
    log.info(
        "model.init_from: %d tensors loaded from %s%s",
        len(report.loaded),
        path,
        f"; not used: {', '.join(report.unused)} (heads this task has no use for)" if report.unused else "",
    )
    if report.problems():
        log.warning(
            "model.init_strict=false: %d tensors not loaded (missing, unexpected or of another shape): %s",
            len(report.problems()),
            ", ".join(report.problems()[:10]),
        )
    return report
