"""The ``objective`` config group as typed settings, one class per kind of objective, checked when built.

A task names its settings class (``objective_type``); the run's objective registry
(``lmforge.run.registry``) maps ``objective.kind`` to the task, so a kind is keyed in one place.
Errors name the key as ``objective.<key>``, where users set it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from lmforge.errors import ConfigError
from lmforge.models import TransformerConfig, is_decoder
from lmforge.objectives.prompt import PromptTemplate

S = TypeVar("S", bound="ObjectiveSettings")
TOKENIZER_KINDS = ("wordpiece", "bpe")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_fraction(key: str, value: Any, low_open: bool = False) -> None:
    """``value`` in [0, 1] (or (0, 1] with ``low_open``), else a ``ConfigError`` naming the key."""
    low_ok = _is_number(value) and (value > 0 if low_open else value >= 0)
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"objective.{key}", f"objective.{key}={value!r} must be in {interval}")


@dataclass(frozen=True)
class ObjectiveSettings:
    """What every objective has: its ``kind``; subclasses add their settings and check them.

    ``tokenizer`` is read from checkpoints written while the objective named the tokenizer kind;
    the kind now follows the model family (WordPiece for BERT, byte-level BPE for decoders).
    """

    KIND: ClassVar[str] = ""
    # Config groups besides ``objective`` that the settings take in (``template``), top-level in the config.
    GROUPS: ClassVar[tuple[str, ...]] = ()
    # Settings that only evaluation reads (not training): lmforge eval may replace a checkpoint's.
    EVALUATION_KEYS: ClassVar[tuple[str, ...]] = ()
    kind: str = ""
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.KIND)
        self.validate()

    def validate(self) -> None:
        if self.kind != self.KIND:
            raise ConfigError("objective.kind", f"objective.kind={self.kind!r} is not {self.KIND!r}")
        if self.tokenizer is not None and self.tokenizer not in TOKENIZER_KINDS:
            raise ConfigError(
                "objective.tokenizer",
                f"objective.tokenizer={self.tokenizer!r} is not one of {', '.join(TOKENIZER_KINDS)}",
            )

    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any] | ObjectiveSettings | None) -> S:
        """Settings from the composed ``objective`` group (or a checkpoint's copy of it); a key the
        objective does not have is refused, naming the ones it has."""
        if isinstance(values, cls):
            return values
        values = dict(values or {})
        known = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"objective.{key}",
                    f"objective.{key} is not a setting of objective.kind={cls.KIND}; its settings: "
                    + ", ".join(known),
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_model(self, model: TransformerConfig) -> None:
        """Rules between these settings and the model (the model family is the registry's to check)."""

    def scored_share(self) -> float:
        """The share of positions the loss scores over the whole vocabulary (for memory estimates)."""
        return 0.0


@dataclass(frozen=True)
class MaskedLMSettings(ObjectiveSettings):
    """Masked-language modelling (BERT's 15 %, 80/10/10), with next-sentence prediction as an option."""

    KIND: ClassVar[str] = "mlm"
    nsp: bool = False
    nsp_weight: float = 1.0
    mlm_probability: float = 0.15
    mask_token_ratio: float = 0.8
    random_token_ratio: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.nsp, bool):
            raise ConfigError("objective.nsp", f"objective.nsp={self.nsp!r} must be true or false")
        if not (_is_number(self.nsp_weight) and self.nsp_weight >= 0):
            raise ConfigError(
                "objective.nsp_weight", f"objective.nsp_weight={self.nsp_weight!r} must be >= 0"
            )
        check_fraction("mlm_probability", self.mlm_probability, low_open=True)
        check_fraction("mask_token_ratio", self.mask_token_ratio)
        check_fraction("random_token_ratio", self.random_token_ratio)
        if self.mask_token_ratio + self.random_token_ratio > 1:
            raise ConfigError(
                "objective.random_token_ratio",
                f"objective.random_token_ratio={self.random_token_ratio} plus objective.mask_token_ratio="
                f"{self.mask_token_ratio} must not exceed 1",
            )

    def scored_share(self) -> float:
        return float(self.mlm_probability)

    def masking(self) -> dict[str, float]:
        """What the masked-LM collator takes."""
        return {
            "mlm_probability": self.mlm_probability,
            "mask_token_ratio": self.mask_token_ratio,
            "random_token_ratio": self.random_token_ratio,
        }


@dataclass(frozen=True)
class CausalLMSettings(ObjectiveSettings):
    """Next-token prediction over packed blocks of text."""

    KIND: ClassVar[str] = "clm"

    def scored_share(self) -> float:
        return 1.0


@dataclass(frozen=True)
class ClassificationSettings(ObjectiveSettings):
    """One label per text (or text pair), from a head on the backbone."""

    KIND: ClassVar[str] = "classify"
    classifier_dropout: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not (_is_number(self.classifier_dropout) and 0 <= self.classifier_dropout < 1):
            raise ConfigError(
                "objective.classifier_dropout",
                f"objective.classifier_dropout={self.classifier_dropout!r} must be in [0, 1)",
            )


@dataclass(frozen=True)
class PromptLMSettings(ObjectiveSettings):
    """One label per text, posed as a template to the model's own LM head and read off its words."""

    KIND: ClassVar[str] = "prompt_lm"
    GROUPS: ClassVar[tuple[str, ...]] = ("template",)
    template: PromptTemplate | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.template is None:
            raise ConfigError(
                "template",
                "objective=prompt_lm poses the task through a template: choose one, e.g. "
                "template=movie_sentiment (conf/template/), or template=generic with template.words=...",
            )
        object.__setattr__(self, "template", PromptTemplate.from_dict(self.template))
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self.tokenizer, "template": self.template.to_dict()}

    def check_model(self, model: TransformerConfig) -> None:
        self.template.form(is_decoder(model))  # the form this model reads must be there


PROMPT_SLOT = "{prompt}"


def fill_template(template: str, prompt: str) -> str:
    """``template`` with ``prompt`` in its ``{prompt}`` slot (braces elsewhere in either stay as they are)."""
    before, after = template.split(PROMPT_SLOT)
    return before + prompt + after


@dataclass(frozen=True)
class InstructionTuningSettings(ObjectiveSettings):
    """Supervised fine-tuning of a decoder on prompt/response pairs, the loss on the response alone.

    ``template`` is the text the model reads before a response, with ``{prompt}`` where the prompt
    goes; the response follows it directly and ends with an end-of-text token. Evaluation generates
    greedily up to ``max_new_tokens`` for the first ``eval_generations`` held-out prompts.
    """

    KIND: ClassVar[str] = "sft"
    EVALUATION_KEYS: ClassVar[tuple[str, ...]] = ("max_new_tokens", "eval_generations")
    template: str = "### Instruction:\n{prompt}\n\n### Response:\n"
    max_new_tokens: int = 64
    eval_generations: int | None = 1000

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.template, str) or self.template.count(PROMPT_SLOT) != 1:
            raise ConfigError(
                "objective.template",
                f"objective.template={self.template!r} must hold {PROMPT_SLOT} exactly once: where the "
                'prompt goes, e.g. "### Instruction:\\n{prompt}\\n\\n### Response:\\n"',
            )
        for key in ("max_new_tokens", "eval_generations"):
            value = getattr(self, key)
            optional = key == "eval_generations" and value is None
            if not optional and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ConfigError(f"objective.{key}", f"objective.{key}={value!r} must be an integer >= 0")

    def scored_share(self) -> float:
        return 1.0

    def prompt_text(self, prompt: str) -> str:
        """The text the model reads before the response: the template with ``prompt`` in its slot."""
        return fill_template(self.template, prompt)
