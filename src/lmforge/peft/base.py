"""What every tuning method shares: validated settings, the freezing rule, the modules a method inserts,
linear layers whose change folds into the base weights, and which tensors a method trains and saves.

A method's own tensors are those of the ``MethodModule`` instances it inserted: that rule survives a
copy, a device move and a reload, where a list of parameter objects would not. Wrapped linear layers
(``FoldableLinear``) take over the base layer's ``weight`` and ``bias`` under the same names, so a
backbone's state dict keeps its keys and only gains the method's.

Counting: the wrappers share the base Parameters, so ``ModelNumbers.num_parameters`` counts each once
and ``parameter_counts`` is exact. ``ModelNumbers.flops_per_token`` counts every method parameter as a
dense one (6 FLOPs per token): right for LoRA, adapters and IA3, a slight overcount for prompt and
prefix encoders (run once per forward pass, not per token); the extra attention to virtual tokens and
prefixes is not counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.block import TransformerBlock


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"peft.{key}", f"peft.{key}={value!r} must be a positive integer")


def check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"peft.{key}", f"peft.{key}={value!r} must be true or false")


def check_choice(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"peft.{key}", f"peft.{key}={value!r} is not one of {', '.join(choices)}")


def check_targets(key: str, values: Any, choices: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of distinct names from ``choices``, as a tuple."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ConfigError(
            f"peft.{key}", f"peft.{key}={values!r} must be a list drawn from {', '.join(choices)}"
        )
    for value in values:
        if value not in choices:
            raise ConfigError(
                f"peft.{key}", f"peft.{key} holds {value!r}, which is not one of {', '.join(choices)}"
            )
    if len(set(values)) != len(values):
        raise ConfigError(f"peft.{key}", f"peft.{key}={list(values)} names a target twice")
    return tuple(values)


@dataclass(frozen=True)
class MethodSettings:
    """A method's ``peft`` config group less its ``method`` key. Subclasses add their hyper-parameters
    and check them in ``validate``; errors name the key as ``peft.<key>``, where users set it."""

    lr: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        lr = self.lr
        if lr is not None and not (is_number(lr) and lr > 0):
            raise ConfigError("peft.lr", f"peft.lr={lr!r} must be positive (or null: use optim.lr)")

    @classmethod
    def from_dict(cls, method: str, values: Mapping[str, Any]) -> MethodSettings:
        known = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key != "method" and key not in known:
                raise ConfigError(
                    f"peft.{key}",
                    f"peft.{key} is not a setting of peft.method={method}; its settings: {', '.join(known)}",
                )
        return cls(**{key: value for key, value in values.items() if key != "method"})


class MethodModule(nn.Module):
    """A module a tuning method inserted: its parameters are the ones the method trains, and they and
    its persistent buffers are what a method checkpoint holds and a merged state dict drops."""


class FoldableLinear(nn.Linear):
    """A linear layer that took over a base ``nn.Linear``'s ``weight`` and ``bias`` (the same
    Parameters, under the same names) and changes its computation in a way ``merge`` can fold into them.

    Subclasses define the changed computation (``adapted``) and how it folds into, or comes back out
    of, a weight and bias (``fold_``). Merged, the layer is a plain linear layer again.
    """

    def __init__(self, base: nn.Linear) -> None:
        # On the meta device: the base's Parameters replace the placeholders at once.
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        self.weight = base.weight
        self.bias = base.bias
        self.merged = False

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fold_(self, weight: torch.Tensor, bias: torch.Tensor | None, undo: bool = False) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) if self.merged else self.adapted(x)

    @torch.no_grad()
    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias with the change folded in, as new tensors: the layer stays as it is."""
        weight = self.weight.detach().clone()
        bias = self.bias.detach().clone() if self.bias is not None else None
        if not self.merged:
            self.fold_(weight, bias)
        return weight, bias

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.fold_(self.weight, self.bias)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.fold_(self.weight, self.bias, undo=True)
            self.merged = False


def method_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of every ``MethodModule`` in ``module``, named relative to it
    (Parameters stay Parameters, so callers can tell them from buffers)."""
    state: dict[str, torch.Tensor] = {}
    for name, child in module.named_modules():
        if isinstance(child, MethodModule):
            state.update(child.state_dict(prefix=f"{name}." if name else "", keep_vars=True))
    return state


def trainable_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that trains, plus the buffers of the method's modules, named relative to
    ``module``: what a method checkpoint holds. The tensors share storage with the module's own."""
    state = {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}
    for name, tensor in method_state(module).items():
        if not isinstance(tensor, nn.Parameter):
            state[name] = tensor.detach()
    return state


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of ``module``; shared (tied, wrapped) Parameters count once."""
    parameters = list(module.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return trainable, sum(p.numel() for p in parameters)


def transformer_blocks(backbone: nn.Module) -> list[TransformerBlock]:
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not all(isinstance(b, TransformerBlock) for b in blocks):
        raise TypeError(
            f"{type(backbone).__name__} has no `blocks` of TransformerBlock: the tuning methods apply to "
            "lmforge backbones (BertModel, DecoderModel)"
        )
    return list(blocks)


def holds_a_method(backbone: nn.Module) -> bool:
    return any(isinstance(m, (MethodModule, FoldableLinear)) for m in backbone.modules())


class TuningMethod:
    """One way to fine-tune a backbone: the modules it inserts and which parameters then train.

    ``apply`` inserts the method's modules into the backbone in place (``insert``), freezes every
    backbone parameter except those of ``trainable_in`` (by default the method's own), and leaves the
    task heads trainable, even a head that is the backbone's token embedding (a tied LM head).
    Methods whose change folds into the base weights (``mergeable``) can ``merge`` and ``unmerge``.
    """

    name: ClassVar[str]
    settings_type: ClassVar[type[MethodSettings]] = MethodSettings
    mergeable: ClassVar[bool] = False
    # Why merge() is refused, for methods that are not mergeable.
    not_mergeable_because: ClassVar[str] = ""

    def __init__(self, settings: Mapping[str, Any] | MethodSettings) -> None:
        if isinstance(settings, MethodSettings):
            if not isinstance(settings, self.settings_type):
                wanted, given = self.settings_type.__name__, type(settings).__name__
                raise TypeError(f"{self.name} takes {wanted}, not {given}")
            self.settings = settings
        else:
            self.settings = self.settings_type.from_dict(self.name, settings)
        self.backbone: nn.Module | None = None

    @property
    def lr(self) -> float | None:
        """The method's peak learning rate, or None to use ``optim.lr``."""
        return self.settings.lr

    def apply(self, backbone: nn.Module, heads: Sequence[nn.Module], tokenizer: Any = None) -> None:
        transformer_blocks(backbone)
        if holds_a_method(backbone):
            raise ValueError(f"{type(backbone).__name__} already holds a tuning method: apply one only")
        self.insert(backbone, tokenizer)
        trainable = list(self.trainable_in(backbone))
        backbone.requires_grad_(False)
        for parameter in trainable:
            parameter.requires_grad_(True)
        for head in heads:
            head.requires_grad_(True)
        self.backbone = backbone

    def insert(self, backbone: nn.Module, tokenizer: Any) -> None:
        """Put the method's modules into ``backbone``; ``tokenizer`` serves methods that read text."""

    def trainable_in(self, backbone: nn.Module) -> Iterable[nn.Parameter]:
        """The backbone parameters that train once the method is in."""
        return (t for t in method_state(backbone).values() if isinstance(t, nn.Parameter))

    def trainable_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        return trainable_state_dict(module)

    parameter_counts = staticmethod(parameter_counts)

    def merge(self) -> None:
        """Fold the method into the base weights: the backbone computes the same as a plain one."""
        for layer in self._foldable_layers():
            layer.merge()

    def unmerge(self) -> None:
        """Undo ``merge`` (to rounding error), so training can go on."""
        for layer in self._foldable_layers():
            layer.unmerge()

    def check_mergeable(self) -> None:
        if not self.mergeable:
            raise ValueError(
                f"peft.method={self.name} cannot be folded into the base weights: "
                f"{self.not_mergeable_because}"
            )

    def applied_backbone(self) -> nn.Module:
        if self.backbone is None:
            raise RuntimeError(f"the {self.name} method is not applied to a backbone yet")
        return self.backbone

    def _foldable_layers(self) -> list[FoldableLinear]:
        self.check_mergeable()
        return [m for m in self.applied_backbone().modules() if isinstance(m, FoldableLinear)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


def merged_state_dict(module: nn.Module, method: TuningMethod) -> dict[str, torch.Tensor]:
    """The state dict of ``module`` with ``method`` folded into the base weights and its own tensors
    dropped: it loads into a plain backbone (plus whatever heads ``module`` holds). ``module`` itself
    is left as it was. Methods that cannot be folded (adapters, prompts, prefixes) raise ValueError."""
    method.check_mergeable()
    state = module.state_dict()
    for name, layer in module.named_modules():
        if isinstance(layer, FoldableLinear):
            prefix = f"{name}." if name else ""
            weight, bias = layer.folded()
            state[f"{prefix}weight"] = weight
            if bias is not None:
                state[f"{prefix}bias"] = bias
    own = method_state(module)
    return {name: tensor for name, tensor in state.items() if name not in own}
