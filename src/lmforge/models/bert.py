"""BERT-style bidirectional encoder built from the shared block library."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.attention import MultiHeadAttention, padding_mask
from lmforge.models.block import NORM_POSITIONS, TransformerBlock
from lmforge.models.config import TransformerConfig
from lmforge.models.feedforward import ACTIVATIONS, FeedForward
from lmforge.models.numbers import ModelNumbers
from lmforge.models.positions import POSITIONS, build_positions


@dataclass
class BertConfig(TransformerConfig):
    """BERT shape: the published ladder lives in ``conf/model/bert_*.yaml``."""

    type_vocab_size: int = 2
    position: str = "learned"
    norm_position: str = "post"
    activation: str = "gelu"  # the feed-forward's and the MLM head's (Hugging Face's one hidden_act)
    pad_token_id: int = 0
    tie_embeddings: bool = (
        True  # the MLM head projects onto the token embedding (False: a decoder of its own)
    )

    def validate(self) -> None:
        super().validate()
        for key, choices in (
            ("position", POSITIONS),
            ("norm_position", NORM_POSITIONS),
            ("activation", ACTIVATIONS),
        ):
            value = getattr(self, key)
            if value not in choices:
                raise ConfigError(
                    f"model.{key}", f"model.{key}={value!r} is not one of {', '.join(sorted(choices))}"
                )
        if self.type_vocab_size < 1:
            raise ConfigError("model.type_vocab_size", "model.type_vocab_size must be at least 1")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(
                "model.pad_token_id",
                f"model.pad_token_id={self.pad_token_id} is outside the vocabulary (size {self.vocab_size})",
            )


class BertEmbeddings(nn.Module):
    """Token + segment + position embeddings, then LayerNorm and dropout.

    Virtual tokens (``prompt``, prompt tuning) come first: they take the first positions and segment 0.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.max_len = config.max_seq_len
        self.tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.segments = nn.Embedding(config.type_vocab_size, config.d_model)
        self.positions = build_positions(config.position, config.max_seq_len, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        prompt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``prompt``: (n_virtual, d_model) embeddings put in front of the tokens' own."""
        x = self.tokens(input_ids)
        if prompt is not None:
            x = torch.cat((prompt.to(x.dtype).expand(x.shape[0], -1, -1), x), dim=1)
            if token_type_ids is not None:
                token_type_ids = F.pad(token_type_ids, (prompt.shape[0], 0))
        if x.shape[1] > self.max_len:
            virtual = f" ({prompt.shape[0]} of them virtual tokens)" if prompt is not None else ""
            raise ValueError(
                f"{x.shape[1]} positions{virtual} exceed the model's table of {self.max_len} "
                "(model.max_seq_len)"
            )
        segments = self.segments.weight[0] if token_type_ids is None else self.segments(token_type_ids)
        x = x + self.positions(x.shape[1]) + segments
        return self.dropout(self.norm(x))


class BertModel(ModelNumbers, nn.Module):
    """Encoder returning one hidden state per token, shape (batch, seq, d_model).

    Two attachment points for tuning methods (``lmforge.peft``), asked once per forward pass:
    ``prompt``, a module with ``n_tokens`` whose call gives (n_tokens, d_model) virtual-token embeddings
    put in front of the input (their hidden states are dropped from the output), and ``prefix``, whose
    call gives each layer's learned (keys, values) for its attention.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                attention=MultiHeadAttention(config.d_model, config.n_heads, config.attention_dropout),
                feed_forward=FeedForward(config.d_model, config.d_ff, config.activation),
                attention_norm=nn.LayerNorm(config.d_model, eps=config.norm_eps),
                feed_forward_norm=nn.LayerNorm(config.d_model, eps=config.norm_eps),
                dropout=config.dropout,
                activation_checkpointing=config.activation_checkpointing,
                norm_position=config.norm_position,
            )
            for _ in range(config.n_layers)
        )
        # Pre-LN leaves the residual stream unnormalised after the last block.
        pre = config.norm_position == "pre"
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if pre else nn.Identity()
        self.prompt: nn.Module | None = None
        self.prefix: nn.Module | None = None
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.embeddings.tokens

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        prompt = self.prompt() if self.prompt is not None else None
        x = self.embeddings(input_ids, token_type_ids, prompt)
        n_virtual = x.shape[1] - input_ids.shape[1]
        if attention_mask is not None and n_virtual:  # every token may see the virtual ones
            attention_mask = F.pad(attention_mask, (n_virtual, 0), value=1)
        bias = None if attention_mask is None else padding_mask(attention_mask, x.dtype)
        prefixes = self.prefix() if self.prefix is not None else [None] * len(self.blocks)
        for block, prefix in zip(self.blocks, prefixes, strict=True):
            x = block(x, bias, prefix=prefix)
        return self.final_norm(x[:, n_virtual:])

    def lookup_parameters(self) -> int:
        tables = (self.embeddings.tokens, self.embeddings.segments, self.embeddings.positions)
        return sum(p.numel() for table in tables for p in table.parameters())
