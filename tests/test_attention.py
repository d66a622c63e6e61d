"""Attention against the explicit formula softmax(QK^T / sqrt(d_k)) V, with and without padding."""

import math

import torch

from lmforge.models.attention import MultiHeadAttention, padding_mask


def reference_attention(module: MultiHeadAttention, x: torch.Tensor, keep: torch.Tensor | None):
    """The textbook computation, head by head, from the module's own weights."""
    d_model = x.shape[-1]
    heads, d_k = module.n_heads, module.head_dim
    q, k, v = (x @ module.qkv.weight.T + module.qkv.bias).split(d_model, dim=-1)
    outputs = []
    for h in range(heads):
        cols = slice(h * d_k, (h + 1) * d_k)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d_k)
        if keep is not None:
            scores = scores.masked_fill(~keep[:, None, :].bool(), float("-inf"))
        outputs.append(torch.softmax(scores, dim=-1) @ v[..., cols])
    return torch.cat(outputs, dim=-1) @ module.out.weight.T + module.out.bias


def test_matches_formula_without_mask():
    torch.manual_seed(0)
    module = MultiHeadAttention(d_model=24, n_heads=3).eval()
    x = torch.randn(2, 7, 24)
    torch.testing.assert_close(module(x), reference_attention(module, x, None), atol=1e-5, rtol=1e-5)


def test_matches_formula_with_padding_mask():
    torch.manual_seed(1)
    module = MultiHeadAttention(d_model=32, n_heads=4).eval()
    x = torch.randn(3, 9, 32)
    keep = torch.ones(3, 9, dtype=torch.long)
    keep[0, 6:] = 0
    keep[2, 2:] = 0
    out = module(x, padding_mask(keep, x.dtype))
    torch.testing.assert_close(out, reference_attention(module, x, keep), atol=1e-5, rtol=1e-5)


def test_padded_keys_do_not_change_real_positions():
    torch.manual_seed(2)
    module = MultiHeadAttention(d_model=16, n_heads=2).eval()
    x = torch.randn(1, 5, 16)
    keep = torch.tensor([[1, 1, 1, 0, 0]])
    noisy = x.clone()
    noisy[:, 3:] = torch.randn(1, 2, 16) * 100
    a = module(x, padding_mask(keep, x.dtype))[:, :3]
    b = module(noisy, padding_mask(keep, x.dtype))[:, :3]
    torch.testing.assert_close(a, b)


def test_padding_mask_is_additive_and_finite():
    bias = padding_mask(torch.tensor([[1, 1, 0]]), torch.float32)
    assert bias.shape == (1, 1, 1, 3)
    assert bias[0, 0, 0, :2].eq(0).all()
    assert torch.isfinite(bias).all() and bias[0, 0, 0, 2] < -1e30
