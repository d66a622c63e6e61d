"""Rotary position embeddings: each channel pair turns by its own angle (RoPE's definition), so attention
scores depend on the offset between positions only."""

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


def test_each_channel_pair_turns_by_its_angle_as_rope_defines_it():
    """Channels (i, i + d/2) of position m turn by m * theta^(-2i/d): a complex product, written out."""
    torch.manual_seed(0)
    head_dim, theta, positions = 8, 100.0, torch.tensor([[0, 1, 5, 17]])
    rotary = RotaryEmbedding(head_dim=head_dim, max_len=32, theta=theta)
    x = torch.randn(1, 1, 4, head_dim)
    cos, sin = rotary(positions, torch.float32)
    turned = apply_rotary(x, cos, sin)
    half = head_dim // 2
    angles = positions[0, :, None].double() * theta ** (-2 * torch.arange(half).double() / head_dim)
    pairs = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(
        torch.ones_like(angles), angles
    )
    expected = torch.cat((pairs.real, pairs.imag), dim=-1).float()
    torch.testing.assert_close(turned, expected, atol=1e-5, rtol=0)
