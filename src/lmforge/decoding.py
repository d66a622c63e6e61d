"""Text continuation for decoders (a KV cache, greedy or sampled) and fill-mask for encoders."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


@torch.inference_mode()
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
    device = model.tokens.weight.device
    ids, mask = left_pad(prompts, pad_id, device)
    total = ids.shape[1] + max_new_tokens
    if total > model.config.max_seq_len:
        raise ValueError(
            f"the longest prompt ({ids.shape[1]} tokens) plus max_new_tokens={max_new_tokens} exceed the "
            f"model's context of {model.config.max_seq_len} tokens: shorten one of them"
        )
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = model.new_cache(len(prompts), total) if use_cache else None
    logits = model.logits(model(ids, mask, positions, cache)[:, -1])
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        token = next_tokens(logits, settings, generator)
        token = token.masked_fill(done, pad_id)
        new.append(token)
        if eos_id is not None:
            done |= token == eos_id
            if bool(done.all()):
                break
        mask = torch.cat((mask, torch.ones_like(mask[:, :1])), dim=1)
        step_position = positions[:, -1:] + 1
        if cache is not None:  # only the new position goes through the model
            positions = step_position
            logits = model.logits(model(token[:, None], mask, step_position, cache)[:, -1])
        else:
            ids = torch.cat((ids, token[:, None]), dim=1)
            positions = torch.cat((positions, step_position), dim=1)
            logits = model.logits(model(ids, mask, positions)[:, -1])
    out = torch.stack(new, dim=1).tolist() if new else [[] for _ in prompts]
    return [row[: row.index(eos_id)] if eos_id in row else row for row in out]


@torch.inference_mode()
def fill_mask(task, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] of ``text``, the ``top_k`` most likely tokens and their probabilities under a
    masked-LM ``task`` (a ``BertPretraining``)."""
    encoding = tokenizer.encode(text)
    mask_id = tokenizer.token_to_id("[MASK]")
    ids = torch.as_tensor([encoding.ids], device=task.device)
    where = ids[0] == mask_id
    if not bool(where.any()):
        raise ValueError(f"the prompt holds no [MASK] token: {text!r}")
    hidden = task(ids, torch.as_tensor([encoding.type_ids], device=task.device))
    logits = task.mlm_head(hidden[0, where], task.backbone.token_embedding.weight)
    best = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
    return [
        [(tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(probs, indices, strict=True)]
        for probs, indices in zip(best.values, best.indices, strict=True)
    ]
