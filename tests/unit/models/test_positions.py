"""Sinusoidal positions against PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""

import math

import pytest
import torch

from lmforge.models.positions import LearnedPositions, SinusoidalPositions, sinusoidal_table


@pytest.mark.parametrize("d_model", [8, 7, 64])
def test_sinusoidal_table_matches_formula(d_model):
    max_len = 50
    table = sinusoidal_table(max_len, d_model)
    expected = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for j in range(d_model):
            i = j // 2
            angle = pos / 10000 ** (2 * i / d_model)
            expected[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    torch.testing.assert_close(table, expected, atol=1e-6, rtol=0)


def test_sinusoidal_positions_are_not_parameters_or_state():
    module = SinusoidalPositions(16, 8)
    assert list(module.parameters()) == []
    assert module.state_dict() == {}
    assert module(5).shape == (5, 8)


def test_learned_positions_are_trainable():
    module = LearnedPositions(16, 8)
    assert module(3).shape == (3, 8)
    assert sum(p.numel() for p in module.parameters()) == 16 * 8
