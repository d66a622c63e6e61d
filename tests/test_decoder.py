"""Decoders: causality, the KV cache against a full pass, grouped-query attention, rotary positions,
left-padded batches and the sampling filters."""

import math

import pytest
import torch

from lmforge.models import DecoderModel, GPTConfig, LlamaConfig
from lmforge.models.attention import MultiHeadAttention
from lmforge.models.decoding import SamplingSettings, column_major_weights, filter_logits, generate
from lmforge.models.rotary import RotaryEmbedding, apply_rotary

SHAPE = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_seq_len": 64}


def gpt() -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(GPTConfig(**SHAPE, dropout=0.0, attention_dropout=0.0)).eval()


def llama() -> DecoderModel:
    torch.manual_seed(0)
    return DecoderModel(LlamaConfig(**SHAPE, n_kv_heads=2)).eval()


BUILDERS = [pytest.param(gpt, id="gpt"), pytest.param(llama, id="llama")]


@pytest.mark.parametrize("build", BUILDERS)
def test_changing_a_future_token_never_changes_earlier_logits(build):
    model = build()
    ids = torch.randint(0, 97, (2, 20))
    changed = ids.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 97
    before, after = model.logits(model(ids)), model.logits(model(changed))
    torch.testing.assert_close(before[:, :12], after[:, :12], atol=0, rtol=0)
    assert not torch.allclose(before[:, 12:], after[:, 12:])


@pytest.mark.parametrize("build", BUILDERS)
def test_cached_decoding_gives_the_logits_of_a_full_pass(build):
    model = build()
    ids = torch.randint(0, 97, (3, 24))
    full = model.logits(model(ids))
    cache = model.new_cache(3, 24)
    pieces = [model.logits(model(ids[:, :10], cache=cache))]  # the prompt at once, then one by one
    for t in range(10, 24):
        pieces.append(model.logits(model(ids[:, t : t + 1], cache=cache)))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 24


@pytest.mark.parametrize("build", BUILDERS)
def test_greedy_continuation_is_the_same_with_and_without_the_cache(build):
    model = build()
    prompts = [[5, 6, 7, 8], [9, 10]]
    cached = generate(model, prompts, 30, use_cache=True)
    uncached = generate(model, prompts, 30, use_cache=False)
    assert cached == uncached and all(len(row) == 30 for row in cached)


@pytest.mark.parametrize("build", BUILDERS)
def test_a_left_padded_batch_continues_each_prompt_as_it_would_alone(build):
    model = build()
    prompts = [[3, 14, 15, 92, 65], [35, 89], [79, 32, 38]]
    batched = generate(model, prompts, 12, pad_id=0)
    alone = [generate(model, [p], 12)[0] for p in prompts]
    assert batched == alone


@pytest.mark.parametrize("build", BUILDERS)
def test_decoding_leaves_the_weights_as_they_were(build):
    """``generate`` stores widening matrices column-major while it runs (faster matrix x vector on
    CPU): same values meanwhile, and afterwards the same contiguous tensors in the same storage."""
    model = build()
    before = {name: (p.detach().clone(), p.data_ptr()) for name, p in model.named_parameters()}
    ids = torch.randint(0, 97, (2, 12))
    expected = model.logits(model(ids))
    with column_major_weights(model):
        assert not model.blocks[0].attention.qkv.weight.is_contiguous()
        torch.testing.assert_close(model.logits(model(ids)), expected, atol=1e-5, rtol=0)
    generate(model, [[1, 2, 3]], 5)
    for name, p in model.named_parameters():
        assert p.is_contiguous() and p.data_ptr() == before[name][1] and torch.equal(p, before[name][0])


def test_generation_stops_at_end_of_text():
    model = gpt()
    first = generate(model, [[1, 2, 3]], 20)[0]
    eos = first[4]  # pretend the fifth greedy token ends the text
    assert generate(model, [[1, 2, 3]], 20, eos_id=eos)[0] == first[: first.index(eos)]


def test_a_prompt_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="exceed the model's context of 64 tokens"):
        generate(gpt(), [list(range(50))], 20)


def test_sampling_is_reproducible_with_a_seed_and_varies_without():
    model = gpt()
    settings = SamplingSettings(sample=True, temperature=1.5)
    draw = lambda seed: generate(model, [[1, 2]], 25, settings, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_top_k_and_top_p_keep_the_expected_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda out: torch.isfinite(out)[0].nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2, top_p=None)) == [0, 1]
    assert kept(filter_logits(logits, top_k=None, top_p=0.6)) == [0, 1]  # 0.5 < 0.6 <= 0.7
    assert kept(filter_logits(logits, top_k=None, top_p=0.5)) == [0]
    assert kept(filter_logits(logits, top_k=None, top_p=0.01)) == [0]  # the best token always stays
    shuffled = logits[:, [3, 0, 4, 1, 2]]
    assert kept(filter_logits(shuffled, top_k=None, top_p=0.6)) == [1, 3]


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


def test_gpt_residual_projections_start_smaller():
    model = DecoderModel(GPTConfig(**{**SHAPE, "d_model": 256, "d_ff": 1024, "n_layers": 8}))
    expected = 0.02 / math.sqrt(2 * 8)
    for block in model.blocks:
        assert block.attention.out.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.feed_forward.down.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert block.attention.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_gpt_ties_its_head_and_llama_does_not():
    assert gpt().lm_head is None
    model = llama()
    assert model.lm_head is not None and model.lm_head.weight is not model.tokens.weight
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_a_bad_group_size_is_refused_with_the_divisors():
    from lmforge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.n_kv_heads=3 must divide model.n_heads=4.*1, 2, 4"):
        LlamaConfig(**SHAPE, n_kv_heads=3)
