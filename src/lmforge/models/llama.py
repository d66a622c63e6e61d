"""LLaMA style decoder (Touvron et al., 2023): RMSNorm, rotary positions, SwiGLU, grouped-query
attention, no biases, an untied LM head.

The architecture is ``DecoderModel``; this file fixes LLaMA's choices as the defaults of the config.
The presets ``conf/model/llama_*.yaml`` and ``tinyllama_1b.yaml`` set the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.models.decoder import DecoderConfig


@dataclass
class LlamaConfig(DecoderConfig):
    """Defaults are TinyLlama 1.1B's shape (22 layers, width 2048, 32 query and 4 key/value heads)."""

    vocab_size: int = 32000
    d_model: int = 2048
    n_layers: int = 22
    n_heads: int = 32
    n_kv_heads: int | None = 4
    d_ff: int = 5632
    max_seq_len: int = 2048
    dropout: float = 0.0
    attention_dropout: float = 0.0
    norm_eps: float = 1e-5
    position: str = "rope"
    rope_theta: float = 10000.0
    norm: str = "rmsnorm"
    activation: str = "silu"
    gated: bool = True
    bias: bool = False
    tie_embeddings: bool = False
    scaled_residual_init: bool = False
