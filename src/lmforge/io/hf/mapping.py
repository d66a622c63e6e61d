"""Weight-name mappings between Hugging Face checkpoints and ours, one ``Family`` per architecture.

A ``Rule`` pairs one of our tensors with the HF tensors it is made of: usually one, copied as is or
transposed (GPT-2's ``Conv1D`` stores ``[in, out]``), or several stacked along rows (our fused
``qkv`` and ``[gate | up]`` from HF's separate projections). The same rules serve both directions,
and also give the shapes a folder must hold: our expected shapes, built on the meta device, are
turned into HF shapes by the export direction, so every tensor is checked before anything is copied.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.decoder import DecoderModel

KEY = "model.init_from"
LEGACY_NORM_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


@dataclass(frozen=True)
class Rule:
    ours: str  # our name, with the task's prefix (backbone., mlm_head., nsp_head., classifier.)
    theirs: tuple[str, ...]  # HF names without the base model's prefix (bert., transformer., model.)
    transpose: bool = False  # GPT-2's Conv1D weights are stored [in, out]
    rows: tuple[int, ...] = ()  # rows of each HF tensor stacked into ours (fused projections)
    # other HF names of a one-tensor rule's tensor (HF ties them, files hold either or both): read
    # when ``theirs`` is absent, written beside it
    copies: tuple[str, ...] = ()

    def to_ours(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [tensors[name].t() if self.transpose else tensors[name] for name in self.theirs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def to_theirs(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = tensor.split(list(self.rows), dim=0) if self.rows else (tensor,)
        out = {
            name: (part.t() if self.transpose else part).contiguous()
            for name, part in zip(self.theirs, parts, strict=True)
        }
        return {**out, **{name: out[self.theirs[0]].clone() for name in self.copies}}


def linear(ours: str, theirs: str, bias: bool = True, transpose: bool = False) -> list[Rule]:
    """A linear layer or a norm: its weight and (optionally) its bias."""
    rules = [Rule(f"{ours}.weight", (f"{theirs}.weight",), transpose)]
    if bias:
        rules.append(Rule(f"{ours}.bias", (f"{theirs}.bias",)))
    return rules


def stacked(ours: str, theirs: tuple[str, ...], rows: tuple[int, ...], bias: bool) -> list[Rule]:
    """One of our fused linear layers from several HF ones, stacked by rows in the order given."""
    rules = [Rule(f"{ours}.weight", tuple(f"{name}.weight" for name in theirs), rows=rows)]
    if bias:
        rules.append(Rule(f"{ours}.bias", tuple(f"{name}.bias" for name in theirs), rows=rows))
    return rules


class Family(ABC):
    """What one architecture needs: config fields and weight names, in both directions.

    Subclasses set the class attributes and implement the abstract methods.
    """

    name: str  # as users know it: BERT, GPT-2, LLaMA
    model_types: tuple[str, ...]  # config.json "model_type" values read by this family
    architectures: tuple[str, ...]  # config.json "architectures" values read by this family
    our_configs: tuple[str, ...]  # our config classes (model._target_) that can hold it
    target: str  # the config class an import builds
    base_prefix: str  # HF's prefix of the base model inside a model with heads
    head_roots: tuple[str, ...]  # HF names that sit outside the base model (the heads)
    skipped: tuple[str, ...]  # HF buffers our model computes itself (suffixes of HF names)

    @abstractmethod
    def config_from_hf(self, hf: dict[str, Any]) -> dict[str, Any]:
        """Our model fields from ``config.json`` (a ConfigError for what our model lacks)."""

    @abstractmethod
    def config_to_hf(self, config: Any, heads: set[str]) -> dict[str, Any]:
        """``config.json`` fields for one of our configs (a ConfigError if HF has no counterpart)."""

    @abstractmethod
    def rules(self, config: Any) -> list[Rule]:
        """Every tensor of ours, with the task's prefix, paired with its HF tensors."""

    @abstractmethod
    def expected_modules(self, config: Any, hf: dict[str, Any]) -> dict[str, nn.Module]:
        """Our task prefix -> module, for the shapes an import expects (built on the meta device)."""

    @abstractmethod
    def architecture(self, heads: set[str]) -> str:
        """The HF class (``architectures``) an export with these heads of ours is."""

    def tied(self, config: Any) -> tuple[str, ...]:
        """HF names that repeat a tensor tied to another one (read from the original, not stored)."""
        return ()

    def base_name(self, name: str) -> str:
        """An HF name without the base model's prefix, which models with heads add, and with the
        TensorFlow-era ``LayerNorm.gamma`` / ``.beta`` of early BERT files (``bert-base-uncased``'s
        pytorch_model.bin) read as ``.weight`` / ``.bias``, as transformers reads them."""
        for legacy, current in LEGACY_NORM_NAMES.items():
            if name.endswith(legacy):
                name = name[: -len(legacy)] + current
        return name[len(self.base_prefix) :] if name.startswith(self.base_prefix) else name

    def full_name(self, name: str, with_prefix: bool) -> str:
        """The name an HF model with heads (``with_prefix``) or the bare base model gives ``name``."""
        return name if not with_prefix or name.startswith(self.head_roots) else self.base_prefix + name

    def is_skipped(self, name: str, config: Any) -> bool:
        return name.endswith(self.skipped) or name in self.tied(config)


def expected_shapes(family: Family, config: Any, hf: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Our tensor name (with task prefix) -> shape, for a model of ``config``, without allocating it."""
    with torch.device("meta"):
        modules = family.expected_modules(config, hf)
    return {
        prefix + name: tuple(tensor.shape)
        for prefix, module in modules.items()
        for name, tensor in module.state_dict().items()
    }


def listed(names: list[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def import_state(
    family: Family, config: Any, hf: dict[str, Any], tensors: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """HF tensors (full names) -> our state dict (task prefixes), everything checked first.

    The base model's tensors must all be there; each head module (``mlm_head.dense``, the pooler
    ``nsp_head.pooler``, ...) is taken whole or not at all: BertForSequenceClassification has the
    pooler without the NSP classifier. An HF tensor no rule reads and that is not a known buffer is an
    error, as is any tensor of another shape: nothing half-converted is returned.
    """
    found = {family.base_name(name): tensor for name, tensor in tensors.items()}
    ours = expected_shapes(family, config, hf)
    rules = [rule for rule in family.rules(config) if rule.ours in ours]
    for rule in rules:  # a copy stands in for an absent original; the original wins when both are there
        present = [name for name in rule.copies if name in found]
        if present and rule.theirs[0] not in found:
            found[rule.theirs[0]] = found[present[0]]
        for name in present:
            del found[name]
    read = {name for rule in rules for name in rule.theirs}
    unexpected = sorted(n for n in found if n not in read and not family.is_skipped(n, config))
    if unexpected:
        raise ConfigError(
            KEY,
            f"{source} holds tensors a {family.name} model of ours has no place for: {listed(unexpected)}",
        )
    heads: dict[str, list[Rule]] = {}  # the base as a whole, each head module on its own
    for rule in rules:
        module = "backbone" if rule.ours.startswith("backbone.") else rule.ours.rsplit(".", 1)[0]
        heads.setdefault(module, []).append(rule)
    used: list[Rule] = []
    missing: list[str] = []
    for head, head_rules in heads.items():
        absent = [name for rule in head_rules for name in rule.theirs if name not in found]
        everything = [name for rule in head_rules for name in rule.theirs]
        if head == "backbone" or len(absent) < len(everything):  # the base, or a head partly there
            missing.extend(absent)
            used.extend(head_rules)
    if missing:
        raise ConfigError(KEY, f"{source} lacks tensors a {family.name} model needs: {listed(missing)}")
    mismatched = []
    for rule in used:
        meta = torch.empty(ours[rule.ours], device="meta")
        wanted = {name: tuple(tensor.shape) for name, tensor in rule.to_theirs(meta).items()}
        for name in rule.theirs:
            if tuple(found[name].shape) != wanted[name]:
                mismatched.append(
                    f"{name} has shape {tuple(found[name].shape)}, this model needs {wanted[name]}"
                )
    if mismatched:
        raise ConfigError(
            KEY, f"{source} does not fit the model built from its config.json: {listed(mismatched)}"
        )
    return {rule.ours: rule.to_ours(found) for rule in used}


def export_state(
    family: Family, config: Any, state: dict[str, torch.Tensor], with_prefix: bool
) -> dict[str, torch.Tensor]:
    """Our state dict (task prefixes) -> HF tensors (full names); every tensor of ours must be read."""
    rules = [rule for rule in family.rules(config) if rule.ours in state]
    left = sorted(set(state) - {rule.ours for rule in rules})
    if left:
        raise ConfigError(
            None, f"these tensors have no {family.name} counterpart in Hugging Face's layout: {listed(left)}"
        )
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        for name, tensor in rule.to_theirs(state[rule.ours].detach().cpu()).items():
            out[family.full_name(name, with_prefix)] = tensor
    return out


class DecoderFamily(Family):
    """What GPT-2 and LLaMA share: our ``DecoderModel`` alone, and a head tied to the embedding or not."""

    def tied(self, config: Any) -> tuple[str, ...]:
        return ("lm_head.weight",) if config.tie_embeddings else ()

    def expected_modules(self, config: Any, hf: dict[str, Any]) -> dict[str, nn.Module]:
        return {"backbone.": DecoderModel(config)}
