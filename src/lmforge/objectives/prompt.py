"""Templates and verbalizers of prompt-based fine-tuning (``objective=prompt_lm``), checked as text.

A template puts an example into words around a slot that the model's own LM head fills: BERT's masked-LM
head scores the ``[MASK]`` of the ``encoder`` form; a decoder's LM head scores the words that follow the
``decoder`` form. The verbalizer (``words``) names the words that stand for each label. Here the text is
parsed and checked, with no tokenizer; the data reads it with the model's tokenizer
(``lmforge.data.labeled.prompting``) and the task scores the words (``lmforge.tasks.prompt_lm``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmforge.errors import ConfigError

TEXT, TEXT_PAIR, SLOT, LITERAL = "text", "text_pair", "slot", "literal"
MASK = "[MASK]"  # the slot of an encoder form
FORMS = ("encoder", "decoder")
KEYS = ("encoder", "decoder", "words")
# A placeholder is {name}; [MASK] is the encoder's slot. Anything else is literal text.
TOKEN = re.compile(r"(\{[^{}]*\}|\[MASK\])")


@dataclass(frozen=True)
class Piece:
    """One part of a parsed template: ``literal`` text (``value``), ``text`` or ``text_pair`` (``value``:
    what goes in front of the text, which the data may set), or ``slot``."""

    kind: str
    value: str = ""


def parse(form: str, key: str) -> tuple[Piece, ...]:
    """The pieces of a template form; an unknown ``{placeholder}`` is an error naming ``key``."""
    pieces = []
    for part in TOKEN.split(form):
        if not part:
            continue
        if part == MASK:
            pieces.append(Piece(SLOT))
        elif part.startswith("{"):
            name = part[1:-1]
            if name not in (TEXT, TEXT_PAIR):
                raise ConfigError(
                    key, f"{key} has the placeholder {part}: a template takes {{text}} and {{text_pair}} only"
                )
            pieces.append(Piece(name))
        else:
            pieces.append(Piece(LITERAL, part))
    return tuple(pieces)


def label_words(values: Any) -> dict[str, tuple[str, ...]]:
    """``template.words`` as label -> its words: each label's words a word or a list of them."""
    if not isinstance(values, Mapping) or len(values) < 2:
        raise ConfigError(
            "template.words",
            f"template.words={values!r} must map each label to its words, two labels or more, e.g. "
            "'template.words={positive:[good],negative:[bad]}'",
        )
    words = {}
    for label, given in values.items():
        listed = [given] if isinstance(given, str) else given
        if not isinstance(listed, Sequence) or not listed:
            raise ConfigError(
                "template.words", f"template.words.{label}={given!r} must be a word or a list of words"
            )
        for word in listed:
            if not isinstance(word, str) or not word.strip():
                raise ConfigError(
                    "template.words",
                    f"template.words.{label} holds {word!r}: each word must be non-empty text",
                )
        words[str(label)] = tuple(word.strip() for word in listed)
    return words


@dataclass(frozen=True)
class PromptTemplate:
    """The ``template`` config group: the two forms of the template and the verbalizer.

    ``encoder``: the text BERT reads, with ``{text}`` (and ``{text_pair}``) and one ``[MASK]``, the slot.
    ``decoder``: the text GPT and LLaMA read, with no ``[MASK]``: the label's words follow its end.
    ``words``: label -> the words that stand for it. A preset may give one form only.
    """

    words: Mapping[str, tuple[str, ...]]
    encoder: str | None = None
    decoder: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", label_words(self.words))
        if self.encoder is None and self.decoder is None:
            raise ConfigError(
                "template.encoder",
                "the template has neither an encoder form (BERT: '{text} It was [MASK].') nor a decoder form "
                "(GPT, LLaMA: 'Review: {text}\\nSentiment:'): give template.encoder or template.decoder",
            )
        for name in FORMS:
            form = getattr(self, name)
            if form is not None:
                self.check_form(name, form)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | PromptTemplate) -> PromptTemplate:
        if isinstance(values, PromptTemplate):
            return values
        if not isinstance(values, Mapping):
            raise ConfigError("template", f"template={values!r} must be a template group (conf/template/)")
        for key in values:
            if key not in KEYS:
                raise ConfigError(
                    f"template.{key}",
                    f"template.{key} is not a template setting; its settings: {', '.join(KEYS)}",
                )
        if "words" not in values:
            raise ConfigError(
                "template.words", "the template has no template.words: map each label to its words"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The plain form checkpoints keep (lists, not tuples)."""
        words = {label: list(listed) for label, listed in self.words.items()}
        return {"words": words, "encoder": self.encoder, "decoder": self.decoder}

    @staticmethod
    def check_form(name: str, form: Any) -> None:
        key = f"template.{name}"
        if not isinstance(form, str):
            raise ConfigError(key, f"{key}={form!r} must be text")
        pieces = parse(form, key)
        kinds = [piece.kind for piece in pieces]
        if kinds.count(TEXT) != 1:
            raise ConfigError(
                key, f"{key}={form!r} must hold {{text}} once (it holds it {kinds.count(TEXT)} times)"
            )
        if kinds.count(TEXT_PAIR) > 1:
            raise ConfigError(key, f"{key}={form!r} holds {{text_pair}} more than once")
        slots = kinds.count(SLOT)
        if name == "encoder" and slots != 1:
            raise ConfigError(
                key,
                f"{key}={form!r} must hold one [MASK], the slot BERT's masked-LM head fills (it holds "
                f"{slots}), e.g. '{{text}} It was [MASK].'",
            )
        if name == "decoder" and slots:
            raise ConfigError(
                key,
                f"{key}={form!r} holds [MASK]: a decoder scores the words that follow the template, so "
                "end it where the label's word goes, e.g. 'Review: {text}\\nSentiment:'",
            )

    def form(self, decoder: bool) -> tuple[Piece, ...]:
        """The parsed form a model reads: ``decoder`` for GPT and LLaMA, ``encoder`` for BERT."""
        name = "decoder" if decoder else "encoder"
        form = getattr(self, name)
        if form is None:
            family, other = ("a decoder (GPT, LLaMA)", "an encoder") if decoder else ("BERT", "a decoder")
            example = "'Review: {text}\\nSentiment:'" if decoder else "'{text} It was [MASK].'"
            raise ConfigError(
                f"template.{name}",
                f"the template has only {other} form, which {family} cannot read: give "
                f"template.{name}, e.g. {example}",
            )
        return parse(form, f"template.{name}")

    def takes_pairs(self, decoder: bool) -> bool:
        return any(piece.kind == TEXT_PAIR for piece in self.form(decoder))
