"""Attention against the explicit formula softmax(QK^T / sqrt(d_k)) V: with and without padding, grouped-query
attention, and learned prefix keys and values."""

import math

import pytest
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


def test_grouped_query_attention_equals_multi_head_attention_with_shared_heads():
    torch.manual_seed(0)
    d, heads, kv_heads, hd = 32, 8, 2, 4
    gqa = MultiHeadAttention(d, heads, n_kv_heads=kv_heads).eval()
    mha = MultiHeadAttention(d, heads).eval()
    q_w, k_w, v_w = gqa.qkv.weight.split([heads * hd, kv_heads * hd, kv_heads * hd])
    q_b, k_b, v_b = gqa.qkv.bias.split([heads * hd, kv_heads * hd, kv_heads * hd])
    share = lambda t: t.view(kv_heads, hd, *t.shape[1:]).repeat_interleave(heads // kv_heads, 0).flatten(0, 1)  # noqa: E731
    with torch.no_grad():
        mha.qkv.weight.copy_(torch.cat([q_w, share(k_w), share(v_w)]))
        mha.qkv.bias.copy_(torch.cat([q_b, share(k_b), share(v_b)]))
        mha.out.load_state_dict(gqa.out.state_dict())
    x = torch.randn(2, 9, d)
    torch.testing.assert_close(gqa(x, is_causal=True), mha(x, is_causal=True), atol=1e-6, rtol=0)


def test_gqa_with_as_many_key_value_heads_as_query_heads_is_plain_attention():
    torch.manual_seed(0)
    plain, grouped = MultiHeadAttention(32, 4).eval(), MultiHeadAttention(32, 4, n_kv_heads=4).eval()
    grouped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(grouped(x), plain(x), atol=0, rtol=0)


@pytest.mark.parametrize("padded", [False, True])
def test_attention_with_a_prefix_matches_the_formula(padded):
    """Every query sees every prefix key; real keys stay causal (or padded) as without a prefix."""
    torch.manual_seed(0)
    heads, kv_heads, head_dim, n_prefix = 4, 2, 8, 3
    attention = MultiHeadAttention(32, heads, n_kv_heads=kv_heads).eval()
    x = torch.randn(2, 6, 32)
    prefix = (torch.randn(1, kv_heads, n_prefix, head_dim), torch.randn(1, kv_heads, n_prefix, head_dim))
    keep = torch.ones(2, 6, dtype=torch.long)
    keep[1, 4:] = 0
    q, k, v = (x @ attention.qkv.weight.T + attention.qkv.bias).split([32, 16, 16], dim=-1)
    q = q.view(2, 6, heads, head_dim).transpose(1, 2)
    k, v = (t.view(2, 6, kv_heads, head_dim).transpose(1, 2) for t in (k, v))
    k = torch.cat((prefix[0].expand(2, -1, -1, -1), k), dim=2).repeat_interleave(heads // kv_heads, 1)
    v = torch.cat((prefix[1].expand(2, -1, -1, -1), v), dim=2).repeat_interleave(heads // kv_heads, 1)
    visible = torch.ones(6, 6, dtype=torch.bool).tril() if not padded else keep.bool()[:, None, None, :]
    visible = torch.cat((torch.ones(*visible.shape[:-1], n_prefix, dtype=torch.bool), visible), dim=-1)
    scores = (q @ k.transpose(-1, -2) / head_dim**0.5).masked_fill(~visible, float("-inf"))
    expected = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 32) @ attention.out.weight.T
    expected = expected + attention.out.bias
    if padded:
        out = attention(x, padding_mask(keep, x.dtype), prefix=prefix)
    else:
        out = attention(x, is_causal=True, prefix=prefix)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
