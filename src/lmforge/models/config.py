"""Shape and regularisation settings shared by every Transformer backbone, checked when built."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lmforge.errors import ConfigError


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass
class TransformerConfig:
    """Sizes of a Transformer stack. Subclasses add what their architecture needs.

    Every field is validated in ``__post_init__`` so a bad shape fails before any weight is allocated;
    messages name the key as ``model.<field>`` because that is where users set it.
    """

    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_seq_len: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    norm_eps: float = 1e-12
    init_std: float = 0.02
    init_from: str | None = None  # a checkpoint whose weights start the backbone (checked by the run's spec)
    activation_checkpointing: bool = False  # recompute each block's activations in the backward pass
    init_strict: bool = True  # False: load a checkpoint whose backbone differs, reporting what was skipped

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for key in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.{key}", f"model.{key}={value!r} must be a positive integer")
        if self.d_model % self.n_heads:
            choices = ", ".join(str(d) for d in _divisors(self.d_model) if d <= 64)
            raise ConfigError(
                "model.n_heads",
                f"model.n_heads={self.n_heads} does not divide model.d_model={self.d_model}: "
                f"set model.n_heads to one of {choices} (or change model.d_model)",
            )
        for key in ("dropout", "attention_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{key}", f"model.{key}={value} must be in [0, 1)")
        for key in ("norm_eps", "init_std"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key}", f"model.{key}={getattr(self, key)} must be positive")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
