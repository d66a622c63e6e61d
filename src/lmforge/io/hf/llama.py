"""LLaMA: ``LlamaForCausalLM`` (TinyLlama, Llama 2 and their kin), with grouped-query attention.

HF's separate ``q/k/v_proj`` stack into our fused ``qkv`` ([all q heads | all k heads | all v heads])
and ``gate_proj``/``up_proj`` into our one ``[gate | up]`` matrix. HF's LLaMA weights use the
rotate-half rotary layout ours uses, so no permutation is needed (Meta's original checkpoints, which
interleave pairs, are permuted by HF's conversion script before they reach a HF folder).
"""

from __future__ import annotations

import json
from typing import Any

from lmforge.errors import ConfigError
from lmforge.io.hf.bert import unsupported
from lmforge.io.hf.mapping import DecoderFamily, Rule, linear, stacked


def rope_theta(hf: dict[str, Any]) -> float:
    """The rotary base: ``rope_theta`` (transformers 4) or ``rope_parameters.rope_theta`` (5)."""
    parameters = hf.get("rope_parameters") or {}
    key = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    scaling = hf.get(key) or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind != "default":
        raise unsupported("LLaMA", f"{kind} rope scaling ({key}={json.dumps(scaling)})", "no scaling")
    return float(hf.get("rope_theta") or parameters.get("rope_theta", 10000.0))


class LlamaFamily(DecoderFamily):
    name = "LLaMA"
    model_types = ("llama",)
    architectures = ("LlamaForCausalLM", "LlamaModel")
    our_configs = ("LlamaConfig", "DecoderConfig")
    target = "lmforge.models.LlamaConfig"
    base_prefix = "model."
    head_roots = ("lm_head.",)
    skipped = (".rotary_emb.inv_freq",)

    def config_from_hf(self, hf: dict[str, Any]) -> dict[str, Any]:
        if hf.get("hidden_act", "silu") != "silu":
            raise unsupported(self.name, f"hidden_act={hf['hidden_act']}")
        bias = bool(hf.get("attention_bias", False))
        if bias != bool(hf.get("mlp_bias", False)):
            raise unsupported(self.name, "biases in attention but not in the MLP (or the reverse)")
        width, heads = hf["hidden_size"], hf["num_attention_heads"]
        if hf.get("head_dim") not in (None, width // heads):
            raise unsupported(self.name, f"head_dim={hf['head_dim']} other than hidden_size / heads")
        return {
            "vocab_size": hf["vocab_size"],
            "d_model": width,
            "n_layers": hf["num_hidden_layers"],
            "n_heads": heads,
            "n_kv_heads": hf.get("num_key_value_heads") or heads,
            "d_ff": hf["intermediate_size"],
            "max_seq_len": hf["max_position_embeddings"],
            "norm_eps": hf.get("rms_norm_eps", 1e-6),
            "rope_theta": rope_theta(hf),
            "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
            "bias": bias,
            "dropout": 0.0,
            "attention_dropout": hf.get("attention_dropout", 0.0),
            "init_std": hf.get("initializer_range", 0.02),
            "position": "rope",
            "norm": "rmsnorm",
            "activation": "silu",
            "gated": True,
        }

    def config_to_hf(self, config: Any, heads: set[str]) -> dict[str, Any]:
        plain = (config.position, config.norm, config.gated, config.activation)
        if plain != ("rope", "rmsnorm", True, "silu"):
            raise ConfigError(
                None,
                "this decoder has no LLaMA counterpart: LLaMA needs position=rope, norm=rmsnorm, gated=true "
                "and activation=silu",
            )
        return {
            "model_type": "llama",
            "vocab_size": config.vocab_size,
            "hidden_size": config.d_model,
            "num_hidden_layers": config.n_layers,
            "num_attention_heads": config.n_heads,
            "num_key_value_heads": config.kv_heads,
            "head_dim": config.head_dim,
            "intermediate_size": config.d_ff,
            "max_position_embeddings": config.max_seq_len,
            "rms_norm_eps": config.norm_eps,
            "rope_theta": config.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
            "hidden_act": "silu",
            "attention_bias": config.bias,
            "mlp_bias": config.bias,
            "attention_dropout": config.attention_dropout,
            "initializer_range": config.init_std,
            "tie_word_embeddings": config.tie_embeddings,
        }

    def rules(self, config: Any) -> list[Rule]:
        q, kv, ff, bias = config.d_model, config.kv_heads * config.head_dim, config.d_ff, config.bias
        rules = linear("backbone.tokens", "embed_tokens", bias=False)
        for i in range(config.n_layers):
            ours, theirs = f"backbone.blocks.{i}", f"layers.{i}"
            attention, mlp = f"{theirs}.self_attn", f"{theirs}.mlp"
            rules += [
                *linear(f"{ours}.attention_norm", f"{theirs}.input_layernorm", bias=False),
                *stacked(
                    f"{ours}.attention.qkv", tuple(f"{attention}.{p}_proj" for p in "qkv"), (q, kv, kv), bias
                ),
                *linear(f"{ours}.attention.out", f"{attention}.o_proj", bias=bias),
                *linear(f"{ours}.feed_forward_norm", f"{theirs}.post_attention_layernorm", bias=False),
                *stacked(f"{ours}.feed_forward.up", (f"{mlp}.gate_proj", f"{mlp}.up_proj"), (ff, ff), bias),
                *linear(f"{ours}.feed_forward.down", f"{mlp}.down_proj", bias=bias),
            ]
        rules += linear("backbone.final_norm", "norm", bias=False)
        if not config.tie_embeddings:
            rules += linear("backbone.lm_head", "lm_head", bias=False)
        return rules

    def architecture(self, heads: set[str]) -> str:
        return "LlamaForCausalLM"
