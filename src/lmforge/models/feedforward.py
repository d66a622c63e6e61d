"""Position-wise feed-forward network: expand, activate (optionally gated), project back."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": lambda: nn.ReLU(),
    "silu": lambda: nn.SiLU(),
}


class FeedForward(nn.Module):
    """``down(act(up(x)))``, or with ``gated`` the GLU form ``down(act(gate(x)) * up(x))``.

    The gated form with SiLU is SwiGLU (LLaMA). Its gate and up projections are one matrix of
    2 x ``d_ff`` rows (gate first), so both come out of a single matrix product.
    """

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True, gated: bool = False
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.gated = gated
        self.up = nn.Linear(d_model, 2 * d_ff if gated else d_ff, bias=bias)
        self.act = ACTIVATIONS[activation]()
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            gate, up = self.up(x).chunk(2, dim=-1)
            return self.down(self.act(gate) * up)
        return self.down(self.act(self.up(x)))
