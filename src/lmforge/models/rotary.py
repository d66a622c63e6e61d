"""Rotary position embeddings (RoPE, Su et al. 2021) in the rotate-half layout LLaMA checkpoints use.

Each pair of channels (i, i + head_dim/2) of a query or key is rotated by the angle
``position * theta^(-2i/head_dim)``, so the dot product of a query and a key depends on their offset only.
"""

from __future__ import annotations

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (batch, heads, seq, head_dim) by angles whose cos/sin are (batch|1, 1, seq, head_dim)."""
    return x * cos + rotate_half(x) * sin


def rotary_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (max_len, head_dim) of each position's angles, in float32 from float64 angles."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().float(), angles.sin().float()


class RotaryEmbedding(nn.Module):
    """The cos/sin of every position up to ``max_len``, computed once and gathered per forward pass."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {head_dim}")
        self.theta = theta
        cos, sin = rotary_tables(head_dim, max_len, theta)
        # Functions of the shape alone: not saved in checkpoints.
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def reset_parameters(self) -> None:
        """Recompute the tables in place (after ``to_empty`` of a model built on the meta device)."""
        max_len, head_dim = self.cos.shape
        cos, sin = rotary_tables(head_dim, max_len, self.theta)
        with torch.no_grad():
            self.cos.copy_(cos)
            self.sin.copy_(sin)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) of shape (batch, 1, seq, head_dim) for ``position_ids`` of shape (batch, seq)."""
        return self.cos[position_ids][:, None].to(dtype), self.sin[position_ids][:, None].to(dtype)
