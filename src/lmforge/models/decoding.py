"""Text continuation for decoders (a KV cache, greedy or sampled) and fill-mask for encoders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from lmforge.models.decoder import DecoderModel


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen: the most likely one, or a draw from the filtered distribution."""

    sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive (sample=false is greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be at least 1 (or null: no limit)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1] (or null: no limit)")


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set to -inf every score outside the ``top_k`` best and outside the smallest set of best tokens
    whose probabilities reach ``top_p`` (nucleus sampling); the best token always stays."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= top_p  # the mass before a token already reaches p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def next_tokens(
    logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None
) -> torch.Tensor:
    if not settings.sample:
        return logits.argmax(-1)
    scores = filter_logits(logits.float() / settings.temperature, settings.top_k, settings.top_p)
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)


def left_pad(
    prompts: list[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (batch, longest) padded on the left, and the 1/0 mask of real tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.as_tensor(prompt, device=device)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


def _relayout(weight: nn.Parameter, layout: torch.Tensor) -> None:
    """Give ``weight`` the strides of ``layout`` (a view of its storage), values unchanged."""
    values = weight.data.clone()
    layout.copy_(values)
    weight.data = layout


@contextmanager
def column_major_weights(model: DecoderModel) -> Iterator[None]:
    """On CPU, store each widening matrix the decoder multiplies by (a linear layer with more outputs
    than inputs, the LM head) column by column while decoding, in its own storage, and row by row
    again afterwards; shapes and values never change.

    One token at a time makes every product matrix x vector, bound by reading the weights. On the
    reference machine (AMD EPYC, PyTorch's MKL, one thread) a widening (out, in) weight stored
    column-major (its transpose, contiguous) is read 2 to 3 times as fast as row-major, and a narrowing
    one (the feed-forward's down projection) up to twice as slowly: decoding gains about 1.5x
    (``bench/decode_vs_hf.py``). Rewriting in place keeps any storage the weights share, and needs a
    copy of one matrix at a time.
    """
    weights = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    if model.lm_head is None:  # tied: the head is the token embedding
        weights[id(model.tokens.weight)] = model.tokens.weight
    moved = [
        (weight, weight.data)
        for weight in weights.values()
        if weight.device.type == "cpu"
        and weight.dim() == 2
        and weight.shape[0] > weight.shape[1]
        and weight.is_contiguous()
    ]
    with torch.no_grad():  # not inference mode: the weights stay ordinary tensors, fit for training
        for weight, rows in moved:
            _relayout(weight, rows.as_strided(rows.shape, (1, rows.shape[0])))
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, rows in moved:
                _relayout(weight, rows)


def generate(
    model: DecoderModel,
    prompts: list[list[int]],
    max_new_tokens: int,
    settings: SamplingSettings | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue each prompt by up to ``max_new_tokens`` tokens, stopping a row at ``eos_id``.

    Prompts of different lengths are batched with left padding: positions count real tokens only,
    so a prompt continues as it would alone. With ``use_cache`` the prompt is read once and each new
    token costs one position; without it every step reruns the whole sequence (for comparison).
    Returns the new tokens of each row, without the end-of-text token.
    """
    settings = settings or SamplingSettings()
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    if width + max_new_tokens > model.config.max_seq_len:
        raise ValueError(
            f"the longest prompt ({width} tokens) plus max_new_tokens={max_new_tokens} exceed the "
            f"model's context of {model.config.max_seq_len} tokens: shorten one of them"
        )
    with column_major_weights(model):
        return _continue(model, prompts, max_new_tokens, settings, eos_id, pad_id, use_cache, generator)


@torch.inference_mode()
def _continue(
    model: DecoderModel,
    prompts: list[list[int]],
    max_new_tokens: int,
    settings: SamplingSettings,
    eos_id: int | None,
    pad_id: int,
    use_cache: bool,
    generator: torch.Generator | None,
) -> list[list[int]]:
    """``generate``'s decoding loop, its arguments checked."""
    device = model.tokens.weight.device
    ids, mask = left_pad(prompts, pad_id, device)
    width = ids.shape[1]
    total = width + max_new_tokens
    # Without padding the model's defaults (positions from the cache length, a causal mask or none
    # for one new token) mean the same and cost nothing per step; with it, the mask grows in place.
    padded = any(len(p) < width for p in prompts)
    full_mask = torch.ones((len(prompts), total), dtype=torch.long, device=device)
    full_mask[:, :width] = mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0) if padded else None
    cache = model.new_cache(len(prompts), total) if use_cache else None
    logits = model.logits(model(ids, mask if padded else None, positions, cache)[:, -1])
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new = torch.full((len(prompts), max_new_tokens), pad_id, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        token = next_tokens(logits, settings, generator)
        if eos_id is not None:
            token = token.masked_fill(done, pad_id)
            done |= token == eos_id
        new[:, step] = token
        if step + 1 == max_new_tokens or (eos_id is not None and bool(done.all())):
            break  # the last token needs no scores
        mask = full_mask[:, : width + step + 1] if padded else None
        if padded:
            step_position = positions[:, -1:] + 1
            positions = step_position if cache is not None else torch.cat((positions, step_position), 1)
        if cache is not None:  # only the new position goes through the model
            logits = model.logits(model(token[:, None], mask, positions, cache)[:, -1])
        else:
            ids = torch.cat((ids, token[:, None]), dim=1)
            logits = model.logits(model(ids, mask, positions)[:, -1])
    out = new.tolist()
    return [row[: row.index(eos_id)] if eos_id in row else row for row in out]


@torch.inference_mode()
def fill_mask(task, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] of ``text``, the ``top_k`` most likely tokens and their probabilities under a
    task with a masked-LM head (``BertPretraining``; ``PromptLM`` on BERT)."""
    encoding = tokenizer.encode(text)
    mask_id = tokenizer.token_to_id("[MASK]")
    ids = torch.as_tensor([encoding.ids], device=task.device)
    where = ids[0] == mask_id
    if not bool(where.any()):
        raise ValueError(f"the prompt holds no [MASK] token: {text!r}")
    hidden = task.backbone(ids, torch.as_tensor([encoding.type_ids], device=task.device))
    logits = task.mlm_head(hidden[0, where], task.backbone.token_embedding.weight)
    best = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
    return [
        [(tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(probs, indices, strict=True)]
        for probs, indices in zip(best.values, best.indices, strict=True)
    ]
