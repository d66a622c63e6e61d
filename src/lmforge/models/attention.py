"""Multi-head self-attention over ``torch.nn.functional.scaled_dot_product_attention``.

One module serves every backbone: bidirectional (BERT) or causal (GPT, LLaMA), with as many key/value
heads as query heads or fewer (grouped-query attention), with or without rotary positions and a
key/value cache for decoding, and with learned prefix keys and values (prefix tuning, ``lmforge.peft``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.models.cache import LayerCache
from lmforge.models.rotary import apply_rotary


def padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a (batch, seq) 1/0 mask of real tokens into an additive (batch, 1, 1, seq) bias.

    Built once per forward pass and shared by every layer: 0 where a key may be attended, the most
    negative finite value of ``dtype`` at padding (finite, so a row never becomes NaN).
    """
    keep = attention_mask.to(torch.bool)[:, None, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def with_prefix_columns(
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    n_prefix: int,
    queries: int,
    keys: int,
    device: torch.device,
) -> torch.Tensor | None:
    """``attn_mask`` widened by ``n_prefix`` key columns in front that every query may see.

    A causal mask that SDPA would build itself (``is_causal``) is written out here, aligned at the top
    left as SDPA aligns it, because SDPA's own cannot leave the prefix columns open.
    """
    if attn_mask is None:
        if not is_causal:
            return None
        attn_mask = torch.ones(queries, keys, dtype=torch.bool, device=device).tril()
    visible = True if attn_mask.dtype == torch.bool else 0.0
    return torch.cat((attn_mask.new_full((*attn_mask.shape[:-1], n_prefix), visible), attn_mask), dim=-1)


class MultiHeadAttention(nn.Module):
    """Self-attention with one fused query/key/value projection and an output projection.

    ``n_kv_heads`` < ``n_heads`` shares each key/value head among ``n_heads / n_kv_heads`` query heads
    (grouped-query attention); the projection's output is laid out as all query heads, then all key
    heads, then all value heads (``projection_rows``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        n_kv_heads: int | None = None,
    ) -> None:
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} does not divide d_model={d_model}")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads={n_kv_heads} does not divide n_heads={n_heads}")
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    @property
    def projection_rows(self) -> dict[str, slice]:
        """Where the query, key and value rows sit in the fused ``qkv`` projection (tuning methods
        that touch one role only, such as LoRA on q and v, update these slices)."""
        q, kv = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        return {"q": slice(0, q), "k": slice(q, q + kv), "v": slice(q + kv, q + 2 * kv)}

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: LayerCache | None = None,
        prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``attn_mask``: boolean (True = may attend) or additive, broadcastable to
        (batch, heads, seq, keys); ``is_causal`` applies a causal mask when ``attn_mask`` is None;
        ``rotary``: the (cos, sin) of each position; ``cache``: past keys and values, extended here.

        ``prefix``: learned (keys, values) of shape (batch|1, kv_heads, n_prefix, head_dim) put in front
        of the keys and values after the cache update, so the cache holds real tokens only. They have
        no position (no rotary rotation) and every query sees them; ``attn_mask`` covers real keys only.
        """
        batch, seq, d_model = x.shape
        heads = (self.n_heads, self.n_kv_heads, self.n_kv_heads)
        # (batch, seq, heads + 2 kv_heads, head_dim) -> (batch, heads..., seq, head_dim), split by role
        q, k, v = self.qkv(x).view(batch, seq, sum(heads), self.head_dim).transpose(1, 2).split(heads, 1)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:
            k, v = cache.update(k, v)
        if prefix is not None:
            n_prefix = prefix[0].shape[2]
            attn_mask = with_prefix_columns(attn_mask, is_causal, n_prefix, seq, k.shape[2], x.device)
            is_causal = False
            k = torch.cat((prefix[0].to(k.dtype).expand(batch, -1, -1, -1), k), dim=2)
            v = torch.cat((prefix[1].to(v.dtype).expand(batch, -1, -1, -1), v), dim=2)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and attn_mask is None,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )
        return self.out(y.transpose(1, 2).reshape(batch, seq, d_model))
