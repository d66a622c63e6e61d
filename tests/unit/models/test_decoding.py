"""Decoding: the KV cache against a full pass, left-padded batches, stopping, and the sampling filters.

The models have large initial weights (std 0.5): a tiny decoder at std 0.02 greedily repeats its last
prompt token, so a broken cache or padding mask would still give the same continuation. Each greedy
comparison first checks that the continuation is not degenerate.
"""

import pytest
import torch

from lmforge.models import DecoderModel
from lmforge.models.decoding import SamplingSettings, column_major_weights, filter_logits, generate
from tests.conftest import assert_non_degenerate
from tests.support import decoders
from tests.support.decoders import builders

LARGE = {"init_std": 0.5}
BUILDERS = builders(**LARGE)


def gpt() -> DecoderModel:
    return decoders.gpt(**LARGE)


@pytest.mark.parametrize("build", BUILDERS)
def test_cached_decoding_gives_the_logits_of_a_full_pass(build):
    model = build()
    ids = torch.randint(0, 97, (3, 24))
    full = model.logits(model(ids))
    cache = model.new_cache(3, 24)
    pieces = [model.logits(model(ids[:, :10], cache=cache))]  # the prompt at once, then one by one
    for t in range(10, 24):
        pieces.append(model.logits(model(ids[:, t : t + 1], cache=cache)))
    scale = full.abs().max().item()  # logits of about 10 at this weight size
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5 * scale, rtol=0)
    assert cache.length == 24


@pytest.mark.parametrize("build", BUILDERS)
def test_greedy_continuation_is_the_same_with_and_without_the_cache(build):
    model = build()
    prompts = [[5, 6, 7, 8], [9, 10]]
    cached = generate(model, prompts, 30, use_cache=True)
    for row in cached:
        assert_non_degenerate(row)
    uncached = generate(model, prompts, 30, use_cache=False)
    assert cached == uncached and all(len(row) == 30 for row in cached)


@pytest.mark.parametrize("build", BUILDERS)
def test_a_left_padded_batch_continues_each_prompt_as_it_would_alone(build):
    model = build()
    prompts = [[3, 14, 15, 92, 65], [35, 89], [60, 3, 17, 25]]
    alone = [generate(model, [p], 12)[0] for p in prompts]
    for row in alone:
        assert_non_degenerate(row)
    assert generate(model, prompts, 12, pad_id=0) == alone


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
        torch.testing.assert_close(
            model.logits(model(ids)), expected, atol=1e-5 * expected.abs().max().item(), rtol=0
        )
    generate(model, [[1, 2, 3]], 5)
    for name, p in model.named_parameters():
        assert p.is_contiguous() and p.data_ptr() == before[name][1] and torch.equal(p, before[name][0])


def test_generation_stops_at_end_of_text():
    model = gpt()
    first = generate(model, [[1, 2, 3]], 20)[0]
    eos = first[4]  # pretend the fifth greedy token ends the text
    assert eos not in first[:4]  # so the text stops after four tokens
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
