"""Decoder-only causal language models (GPT-2, LLaMA) assembled from the shared block library.

``DecoderConfig`` names every architectural choice; ``GPTConfig`` and ``LlamaConfig`` (``gpt.py``,
``llama.py``) only change its defaults. ``DecoderModel`` returns hidden states and, through
``logits``, next-token scores; a ``KVCache`` makes decoding one token at a time cost one position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.attention import MultiHeadAttention
from lmforge.models.block import TransformerBlock
from lmforge.models.cache import KVCache
from lmforge.models.config import TransformerConfig
from lmforge.models.feedforward import ACTIVATIONS, FeedForward
from lmforge.models.numbers import ModelNumbers
from lmforge.models.positions import POSITIONS, build_positions
from lmforge.models.rotary import RotaryEmbedding

NORMS = ("layernorm", "rmsnorm")
DECODER_POSITIONS = (*POSITIONS, "rope")


@dataclass
class DecoderConfig(TransformerConfig):
    """A pre-LN causal decoder; the defaults are GPT-2 small's."""

    vocab_size: int = 50257
    max_seq_len: int = 1024
    norm_eps: float = 1e-5
    n_kv_heads: int | None = None  # None: as many as n_heads (plain multi-head attention)
    position: str = "learned"
    rope_theta: float = 10000.0
    norm: str = "layernorm"
    activation: str = "gelu_tanh"
    gated: bool = False
    bias: bool = True
    tie_embeddings: bool = True
    scaled_residual_init: bool = True

    def validate(self) -> None:
        super().validate()
        for key, choices in (("position", DECODER_POSITIONS), ("norm", NORMS), ("activation", ACTIVATIONS)):
            value = getattr(self, key)
            if value not in choices:
                raise ConfigError(
                    f"model.{key}", f"model.{key}={value!r} is not one of {', '.join(sorted(choices))}"
                )
        kv = self.kv_heads
        if not isinstance(kv, int) or kv < 1 or self.n_heads % kv:
            raise ConfigError(
                "model.n_kv_heads",
                f"model.n_kv_heads={self.n_kv_heads} must divide model.n_heads={self.n_heads} (each "
                "key/value head serves the same number of query heads): e.g. "
                + ", ".join(str(d) for d in range(1, self.n_heads + 1) if self.n_heads % d == 0),
            )
        if self.position == "rope":
            if self.head_dim % 2:
                raise ConfigError(
                    "model.n_heads",
                    f"rotary positions need an even head size; d_model/n_heads = {self.head_dim}",
                )
            if self.rope_theta <= 0:
                raise ConfigError("model.rope_theta", f"model.rope_theta={self.rope_theta} must be positive")

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


def build_norm(config: DecoderConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


class DecoderModel(ModelNumbers, nn.Module):
    """Token embedding (+ absolute positions), pre-LN causal blocks, a final norm and the LM head.

    Two attachment points for tuning methods (``lmforge.peft``), asked once per forward pass:

    - ``prompt``: a module with ``n_tokens`` whose call gives (n_tokens, d_model) virtual-token
      embeddings. They enter in front of the input at positions 0 .. n - 1, so real tokens sit n
      positions later; their hidden states are dropped from the output. Callers never see them:
      ``position_ids`` and ``attention_mask`` count real tokens only and are shifted or widened here.
      With a KV cache they enter on the first forward pass (an empty cache), which then holds them.
    - ``prefix``: its call gives each layer's learned (keys, values), which every query sees.

    ``block_type`` is the block each layer is built as: a subclass changes how a layer composes its
    sublayers (docs/extending.md builds a GPT-NeoX-style parallel block this way).
    """

    block_type: ClassVar[type[TransformerBlock]] = TransformerBlock

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        rope = config.position == "rope"
        self.positions = (
            None if rope else build_positions(config.position, config.max_seq_len, config.d_model)
        )
        self.rotary = (
            RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta) if rope else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            self.block_type(
                attention=MultiHeadAttention(
                    config.d_model,
                    config.n_heads,
                    config.attention_dropout,
                    bias=config.bias,
                    n_kv_heads=config.kv_heads,
                ),
                feed_forward=FeedForward(
                    config.d_model, config.d_ff, config.activation, bias=config.bias, gated=config.gated
                ),
                attention_norm=build_norm(config),
                feed_forward_norm=build_norm(config),
                dropout=config.dropout,
                activation_checkpointing=config.activation_checkpointing,
                norm_position="pre",
            )
            for _ in range(config.n_layers)
        )
        self.final_norm = build_norm(config)
        self.lm_head = (
            None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self.prompt: nn.Module | None = None
        self.prefix: nn.Module | None = None
        self.apply(self._init_weights)
        if config.scaled_residual_init:  # GPT-2: keep the residual stream's variance flat with depth
            std = config.init_std / math.sqrt(2 * config.n_layers)
            for block in self.blocks:
                nn.init.normal_(block.attention.out.weight, mean=0.0, std=std)
                nn.init.normal_(block.feed_forward.down.weight, mean=0.0, std=std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.tokens

    def lookup_parameters(self) -> int:
        table = 0 if self.config.tie_embeddings else self.tokens.weight.numel()  # tied: it is the head
        positions = sum(p.numel() for p in self.positions.parameters()) if self.positions else 0
        return table + positions

    @property
    def n_virtual_tokens(self) -> int:
        return self.prompt.n_tokens if self.prompt is not None else 0

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` real tokens (default: what
        the position table leaves), plus room for the virtual tokens of an attached prompt."""
        n_virtual = self.n_virtual_tokens
        weight = self.tokens.weight
        return KVCache(
            self.config.n_layers,
            batch_size,
            self.config.kv_heads,
            (max_len or self.config.max_seq_len - n_virtual) + n_virtual,
            self.config.head_dim,
            dtype=weight.dtype,
            device=weight.device,
        )

    def _attention_mask(
        self,
        attention_mask: torch.Tensor | None,
        seq: int,
        start: int,
        cache: KVCache | None,
        segment_ids: torch.Tensor | None = None,
        n_shared: int = 0,
    ) -> tuple[torch.Tensor | None, bool]:
        """A boolean (batch|1, 1, seq, keys) mask, or None with ``is_causal`` when SDPA can build it.

        With a cache the queries sit at positions ``start ..`` and see every earlier key, which SDPA's
        own causal mask (aligned at the top left) gets wrong, so the mask is explicit there. Each query
        may always see itself, so a left-padding row is never fully masked (that would give NaN).
        ``segment_ids`` (batch, seq - n_shared), given for the whole sequence at once, keep each query to
        the keys of its own segment (a block-diagonal causal mask for packed sequences); the first
        ``n_shared`` positions (virtual tokens of prompt tuning) are seen by every segment.
        """
        if attention_mask is None and segment_ids is None and (cache is None or start == 0):
            return None, True
        if attention_mask is None and seq == 1:
            return None, False  # one new token sees the whole cache
        device = self.tokens.weight.device
        keys = start + seq
        query_pos = torch.arange(start, keys, device=device)[:, None]
        key_pos = torch.arange(keys, device=device)[None, :]
        mask = (key_pos <= query_pos)[None, None]
        if attention_mask is not None:
            if attention_mask.shape[1] != keys:
                raise ValueError(
                    f"attention_mask covers {attention_mask.shape[1]} positions; the cache and the input "
                    f"hold {keys}"
                )
            real = attention_mask.to(torch.bool)[:, None, None, :]
            mask = mask & (real | (key_pos == query_pos)[None, None])
        if segment_ids is not None:
            same = segment_ids[:, :, None] == segment_ids[:, None, :]
            mask = mask & F.pad(same, (n_shared, 0, n_shared, 0), value=True)[:, None]
        return mask, False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (batch, seq, d_model).

        ``attention_mask`` (batch, keys) marks real tokens with 1 (with a cache it covers the cached
        positions too); ``position_ids`` (batch, seq) default to ``cache.length ..``; ``cache`` is
        read and extended, and its length advanced by ``seq``. ``segment_ids`` (batch, seq): several
        sequences packed in one row, each token attending only to earlier tokens of its own segment
        (give each its own ``position_ids`` from 0 too); not with a cache. An attached ``prompt`` adds
        its virtual tokens in front (see the class docstring), seen by every segment: no argument
        counts them.
        """
        if segment_ids is not None and cache is not None:
            raise ValueError("segment_ids (packed sequences) are for training and scoring, not with a cache")
        seq = input_ids.shape[1]
        start = cache.length if cache is not None else 0
        n_virtual = self.n_virtual_tokens
        inserted = n_virtual if start == 0 else 0  # with a cache, the virtual tokens are already in it
        if position_ids is None:
            first = start + inserted  # after the virtual tokens: those inserted now, or those cached
            position_ids = torch.arange(first, first + seq, device=input_ids.device)[None]
            last = first + seq - 1
        else:  # given for left-padded prompts: read the largest (one sync, outside training)
            position_ids = position_ids + n_virtual
            last = int(position_ids.max()) if seq else 0
        if last >= self.config.max_seq_len:
            virtual = f" ({n_virtual} virtual tokens of prompt tuning first)" if n_virtual else ""
            raise ValueError(
                f"position {last}{virtual} is beyond the model's table of {self.config.max_seq_len} "
                "positions (model.max_seq_len)"
            )
        x = self.tokens(input_ids)
        if inserted:
            x = torch.cat((self.prompt().to(x.dtype).expand(x.shape[0], -1, -1), x), dim=1)
            virtual_ids = torch.arange(n_virtual, device=input_ids.device).expand(len(position_ids), -1)
            position_ids = torch.cat((virtual_ids, position_ids), dim=1)
        if attention_mask is not None and n_virtual:
            attention_mask = F.pad(attention_mask, (n_virtual, 0), value=1)
        if self.positions is not None:
            x = x + self.positions.gather(position_ids)
        x = self.dropout(x)
        rotary = self.rotary(position_ids, x.dtype) if self.rotary is not None else None
        mask, is_causal = self._attention_mask(
            attention_mask, x.shape[1], start, cache, segment_ids, inserted
        )
        prefixes = self.prefix() if self.prefix is not None else [None] * len(self.blocks)
        for index, (block, prefix) in enumerate(zip(self.blocks, prefixes, strict=True)):
            layer_cache = cache.layer(index) if cache is not None else None
            x = block(x, mask, is_causal=is_causal, rotary=rotary, cache=layer_cache, prefix=prefix)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.final_norm(x[:, inserted:])

    @property
    def output_weight(self) -> torch.Tensor:
        """The LM head's matrix (vocabulary, d_model): the token embedding when the two are tied."""
        return self.tokens.weight if self.lm_head is None else self.lm_head.weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token scores over the vocabulary for each hidden state."""
        return F.linear(hidden, self.output_weight)
