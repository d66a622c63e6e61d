"""Absolute position embeddings: a learned table or the fixed sinusoidal one.

``forward(seq_len)`` gives positions 0 .. seq_len - 1; ``gather(position_ids)`` any positions (decoding
with a cache, left-padded prompts).
"""

from __future__ import annotations

import torch
from torch import nn


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = position / torch.pow(10000.0, two_i / d_model)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.float()


class LearnedPositions(nn.Module):
    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_len, d_model)

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.table.weight[:seq_len]

    def gather(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table(position_ids)


class SinusoidalPositions(nn.Module):
    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        # Not a parameter and not saved: it is a function of the shape alone.
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def reset_parameters(self) -> None:
        """Recompute the table in place (after ``to_empty`` of a model built on the meta device)."""
        with torch.no_grad():
            self.table.copy_(sinusoidal_table(*self.table.shape))

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.table[:seq_len]

    def gather(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.table[position_ids]


POSITIONS = {"learned": LearnedPositions, "sinusoidal": SinusoidalPositions}


def build_positions(kind: str, max_len: int, d_model: int) -> nn.Module:
    if kind not in POSITIONS:
        raise ValueError(f"unknown position embedding {kind!r}; choose one of {sorted(POSITIONS)}")
    return POSITIONS[kind](max_len, d_model)
