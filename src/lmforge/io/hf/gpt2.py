"""GPT-2: ``GPT2LMHeadModel`` and ``GPT2Model``.

GPT-2 stores its linear layers as ``Conv1D`` ([in, out]): every weight is transposed on the way. Its
``c_attn`` is already fused as [q | k | v], each laid out head after head, as our ``qkv`` is. The
causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` of older checkpoints are rebuilt, not read.
"""

from __future__ import annotations

from typing import Any

from lmforge.errors import ConfigError
from lmforge.io.hf.bert import unsupported
from lmforge.io.hf.mapping import DecoderFamily, Rule, linear

ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
}


class GPT2Family(DecoderFamily):
    name = "GPT-2"
    model_types = ("gpt2",)
    architectures = ("GPT2LMHeadModel", "GPT2Model")
    our_configs = ("GPTConfig", "DecoderConfig")
    target = "lmforge.models.GPTConfig"
    base_prefix = "transformer."
    head_roots = ("lm_head.",)
    skipped = (".attn.bias", ".attn.masked_bias")

    def config_from_hf(self, hf: dict[str, Any]) -> dict[str, Any]:
        activation = hf.get("activation_function", "gelu_new")
        if activation not in ACTIVATIONS:
            raise unsupported(self.name, f"activation_function={activation}")
        if hf.get("scale_attn_by_inverse_layer_idx") or not hf.get("scale_attn_weights", True):
            raise unsupported(self.name, "an attention scale other than 1/sqrt(head size)")
        return {
            "vocab_size": hf["vocab_size"],
            "d_model": hf["n_embd"],
            "n_layers": hf["n_layer"],
            "n_heads": hf["n_head"],
            "n_kv_heads": None,
            "d_ff": hf.get("n_inner") or 4 * hf["n_embd"],
            "max_seq_len": hf["n_positions"],
            "norm_eps": hf.get("layer_norm_epsilon", 1e-5),
            "activation": ACTIVATIONS[activation],
            "dropout": hf.get("resid_pdrop", 0.1),
            "attention_dropout": hf.get("attn_pdrop", 0.1),
            "init_std": hf.get("initializer_range", 0.02),
            "tie_embeddings": hf.get("tie_word_embeddings", True),
            "position": "learned",
            "norm": "layernorm",
            "gated": False,
            "bias": True,
        }

    def config_to_hf(self, config: Any, heads: set[str]) -> dict[str, Any]:
        plain = (config.position, config.norm, config.gated, config.bias, config.kv_heads == config.n_heads)
        if plain != ("learned", "layernorm", False, True, True):
            raise ConfigError(
                None,
                "this decoder has no GPT-2 counterpart: GPT-2 needs position=learned, norm=layernorm, "
                "gated=false, bias=true and n_kv_heads=null",
            )
        return {
            "model_type": "gpt2",
            "vocab_size": config.vocab_size,
            "n_embd": config.d_model,
            "n_layer": config.n_layers,
            "n_head": config.n_heads,
            "n_inner": config.d_ff,
            "n_positions": config.max_seq_len,
            "layer_norm_epsilon": config.norm_eps,
            "activation_function": next(hf for hf, ours in ACTIVATIONS.items() if ours == config.activation),
            "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout,
            "attn_pdrop": config.attention_dropout,
            "initializer_range": config.init_std,
            "tie_word_embeddings": config.tie_embeddings,
        }

    def rules(self, config: Any) -> list[Rule]:
        rules = [
            *linear("backbone.tokens", "wte", bias=False),
            *linear("backbone.positions.table", "wpe", bias=False),
        ]
        for i in range(config.n_layers):
            ours, theirs = f"backbone.blocks.{i}", f"h.{i}"
            rules += [
                *linear(f"{ours}.attention_norm", f"{theirs}.ln_1"),
                *linear(f"{ours}.attention.qkv", f"{theirs}.attn.c_attn", transpose=True),
                *linear(f"{ours}.attention.out", f"{theirs}.attn.c_proj", transpose=True),
                *linear(f"{ours}.feed_forward_norm", f"{theirs}.ln_2"),
                *linear(f"{ours}.feed_forward.up", f"{theirs}.mlp.c_fc", transpose=True),
                *linear(f"{ours}.feed_forward.down", f"{theirs}.mlp.c_proj", transpose=True),
            ]
        rules += linear("backbone.final_norm", "ln_f")
        if not config.tie_embeddings:
            rules += linear("backbone.lm_head", "lm_head", bias=False)
        return rules

    def architecture(self, heads: set[str]) -> str:
        return "GPT2LMHeadModel"
