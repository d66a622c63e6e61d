"""BERT: ``BertModel``, ``BertForPreTraining``, ``BertForMaskedLM``, ``BertForSequenceClassification``.

Our encoder is the same post-LN network, with query/key/value fused into one projection (rows
[q | k | v]). The pretraining heads map onto ours: ``cls.predictions`` is our ``MaskedLMHead`` (same
``hidden_act`` and ``layer_norm_eps`` as the encoder; its decoder is the word embedding, or with
``tie_word_embeddings=false`` a ``decoder`` of its own), ``bert.pooler`` + ``cls.seq_relationship`` our
``NextSentenceHead``. A sequence classifier's ``classifier`` is carried as ``classifier.`` (its pooler is
the NSP pooler).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lmforge.errors import ConfigError
from lmforge.io.hf.mapping import Family, Rule, linear, stacked
from lmforge.models.bert import BertModel
from lmforge.objectives import MaskedLMHead, NextSentenceHead

# HF ``hidden_act`` -> our activation (and back: the first name wins). gelu is the exact (erf) GELU;
# gelu_new and gelu_pytorch_tanh are the tanh approximation, in Python and in PyTorch's kernel.
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
}


def unsupported(family: str, what: str, ours: str = "") -> ConfigError:
    """``what`` starts with the config.json key at fault (``hidden_act=gelu_fast``), ``ours`` says what
    we have instead; the reader of the folder puts the folder in front (``lmforge.io.hf.read_folder``)."""
    instead = f" (ours: {ours})" if ours else ""
    return ConfigError(
        "model.init_from",
        f"this {family} checkpoint uses {what}, which our model does not implement{instead}",
    )


def num_labels(hf: dict[str, Any]) -> int:
    return len(hf["id2label"]) if hf.get("id2label") else int(hf.get("num_labels", 2))


class BertFamily(Family):
    name = "BERT"
    model_types = ("bert",)
    architectures = ("BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForSequenceClassification")
    our_configs = ("BertConfig",)
    target = "lmforge.models.BertConfig"
    base_prefix = "bert."
    head_roots = ("cls.", "classifier.")
    skipped = ("embeddings.position_ids",)

    def config_from_hf(self, hf: dict[str, Any]) -> dict[str, Any]:
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise unsupported(self.name, f"position_embedding_type={hf['position_embedding_type']}")
        if hf.get("hidden_act", "gelu") not in ACTIVATIONS:
            raise unsupported(self.name, f"hidden_act={hf['hidden_act']}", ", ".join(ACTIVATIONS))
        return {
            "vocab_size": hf["vocab_size"],
            "d_model": hf["hidden_size"],
            "n_layers": hf["num_hidden_layers"],
            "n_heads": hf["num_attention_heads"],
            "d_ff": hf["intermediate_size"],
            "max_seq_len": hf["max_position_embeddings"],
            "type_vocab_size": hf.get("type_vocab_size", 2),
            "norm_eps": hf.get("layer_norm_eps", 1e-12),
            "activation": ACTIVATIONS[hf.get("hidden_act", "gelu")],
            "tie_embeddings": bool(hf.get("tie_word_embeddings", True)),
            "pad_token_id": hf.get("pad_token_id") or 0,
            "dropout": hf.get("hidden_dropout_prob", 0.1),
            "attention_dropout": hf.get("attention_probs_dropout_prob", 0.1),
            "init_std": hf.get("initializer_range", 0.02),
            "position": "learned",
            "norm_position": "post",
        }

    def config_to_hf(self, config: Any, heads: set[str]) -> dict[str, Any]:
        if config.position != "learned" or config.norm_position != "post":
            raise ConfigError(
                None,
                f"a BERT with position={config.position}, norm_position={config.norm_position} has no "
                "Hugging Face counterpart (BERT there has learned positions and post-LN)",
            )
        hidden_act = next(hf for hf, ours in ACTIVATIONS.items() if ours == config.activation)
        return {
            "model_type": "bert",
            "vocab_size": config.vocab_size,
            "hidden_size": config.d_model,
            "num_hidden_layers": config.n_layers,
            "num_attention_heads": config.n_heads,
            "intermediate_size": config.d_ff,
            "max_position_embeddings": config.max_seq_len,
            "type_vocab_size": config.type_vocab_size,
            "layer_norm_eps": config.norm_eps,
            "hidden_act": hidden_act,
            "pad_token_id": config.pad_token_id,
            "hidden_dropout_prob": config.dropout,
            "attention_probs_dropout_prob": config.attention_dropout,
            "initializer_range": config.init_std,
            "position_embedding_type": "absolute",
            "tie_word_embeddings": config.tie_embeddings,
        }

    def rules(self, config: Any) -> list[Rule]:
        d = config.d_model
        rules = [
            *linear("backbone.embeddings.tokens", "embeddings.word_embeddings", bias=False),
            *linear("backbone.embeddings.positions.table", "embeddings.position_embeddings", bias=False),
            *linear("backbone.embeddings.segments", "embeddings.token_type_embeddings", bias=False),
            *linear("backbone.embeddings.norm", "embeddings.LayerNorm"),
        ]
        for i in range(config.n_layers):
            ours, theirs = f"backbone.blocks.{i}", f"encoder.layer.{i}"
            attention = f"{theirs}.attention.self"
            rules += [
                *stacked(
                    f"{ours}.attention.qkv",
                    tuple(f"{attention}.{r}" for r in ("query", "key", "value")),
                    (d, d, d),
                    True,
                ),
                *linear(f"{ours}.attention.out", f"{theirs}.attention.output.dense"),
                *linear(f"{ours}.attention_norm", f"{theirs}.attention.output.LayerNorm"),
                *linear(f"{ours}.feed_forward.up", f"{theirs}.intermediate.dense"),
                *linear(f"{ours}.feed_forward.down", f"{theirs}.output.dense"),
                *linear(f"{ours}.feed_forward_norm", f"{theirs}.output.LayerNorm"),
            ]
        if config.tie_embeddings:  # the decoder is the word embedding, its bias cls.predictions.bias
            decoder = [Rule("mlm_head.bias", ("cls.predictions.bias",))]
        else:  # transformers 5 applies decoder.bias (4 tied it to cls.predictions.bias and wrote that one)
            decoder = [
                *linear("mlm_head.decoder", "cls.predictions.decoder", bias=False),
                Rule("mlm_head.bias", ("cls.predictions.decoder.bias",), copies=("cls.predictions.bias",)),
            ]
        return [
            *rules,
            *linear("mlm_head.dense", "cls.predictions.transform.dense"),
            *linear("mlm_head.norm", "cls.predictions.transform.LayerNorm"),
            *decoder,
            *linear("nsp_head.pooler", "pooler.dense"),
            *linear("nsp_head.classifier", "cls.seq_relationship"),
            *linear("classifier", "classifier"),
        ]

    def tied(self, config: Any) -> tuple[str, ...]:
        return (
            ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
            if config.tie_embeddings
            else ()
        )

    def expected_modules(self, config: Any, hf: dict[str, Any]) -> dict[str, nn.Module]:
        return {
            "backbone.": BertModel(config),
            "mlm_head.": MaskedLMHead(
                config.d_model,
                config.vocab_size,
                config.norm_eps,
                activation=config.activation,
                tied=config.tie_embeddings,
            ),
            "nsp_head.": NextSentenceHead(config.d_model),
            "classifier.": nn.Linear(config.d_model, num_labels(hf)),
        }

    def architecture(self, heads: set[str]) -> str:
        if "classifier" in heads:
            return "BertForSequenceClassification"
        if "mlm_head" in heads:
            return "BertForPreTraining" if "nsp_head" in heads else "BertForMaskedLM"
        return "BertModel"
