"""Rotary position embeddings: attention scores depend on the offset between positions only."""

import pytest
import torch

from lmforge.models.rotary import RotaryEmbedding, apply_rotary


def test_rotary_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    rotary = RotaryEmbedding(head_dim=16, max_len=128, theta=10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:
        cos, sin = rotary(torch.tensor([[m, n]]), torch.float32)
        rq = apply_rotary(q, cos[:, :, :1], sin[:, :, :1])
        rk = apply_rotary(k, cos[:, :, 1:], sin[:, :, 1:])
        return float((rq * rk).sum())

    for offset in (0, 3, 17):
        reference = score(offset, 0)
        for shift in (1, 20, 90):
            assert score(offset + shift, shift) == pytest.approx(reference, abs=1e-4)
    assert score(5, 0) != pytest.approx(score(6, 0), abs=1e-3)
    assert score(0, 0) == pytest.approx(float((q * k).sum()), abs=1e-6)  # no rotation at offset 0
