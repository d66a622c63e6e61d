"""Greedy decoding: lmforge with its KV cache against ``transformers``' ``generate()`` and against
lmforge without the cache, side by side in one process.

For each preset (``conf/model/<model>.yaml``, vocabulary ``--vocab-size``, randomly initialised:
speed does not depend on the weights) the Hugging Face model (``GPT2LMHeadModel`` /
``LlamaForCausalLM``, ``attn_implementation="sdpa"``) is our model exported through
``lmforge.io.hf`` (the same weights), so the four ways decode the same prompt (batch 1, fp32, eval) to
the same continuation:

  lmforge, KV cache       ``lmforge.models.decoding.generate(use_cache=True)``: a preallocated cache
  lmforge, no cache       the same, rerunning the whole sequence for each new token
  HF generate(), cache    ``generate(do_sample=False, max/min_new_tokens=N, use_cache=True)``
  HF generate(), no cache the same with ``use_cache=False``

Each timed run covers the whole call (prompt, then every new token). After one warm-up run of each,
the four alternate run by run, so they see the same machine state; each figure is the median of
``--repeats``. The continuations are compared token by token: with identical weights greedy decoding
agrees, unless two scores tie within float error, in which case the first differing position is
reported (not an error).

Usage: OMP_NUM_THREADS=1 python bench/decode_vs_hf.py [--models gpt_mini llama_mini]
       [--new-tokens 256] [--prompt-tokens 32] [--vocab-size 8192] [--repeats 5] [--device cpu]
Writes bench/results/decode.md (``common.write_section``) and prints it. ``bench/gpu_check.py`` calls
``measure_model`` with ``--device cuda`` settings (on a GPU each call's end waits for its tokens).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from common import command, hf_twin, model_settings, verdict, write_section
from hydra.utils import instantiate

from lmforge.io.hf import family_for_config
from lmforge.models import build_backbone
from lmforge.models.decoding import generate

TARGET_VS_HF = 1.5  # lmforge with the cache against generate() with its cache
TARGET_VS_NO_CACHE = 5.0  # lmforge with the cache against lmforge without it
WAYS = ("lmforge, KV cache", "lmforge, no cache", "HF generate(), cache", "HF generate(), no cache")


def our_model(name: str, vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(instantiate(model_settings(name, vocab_size=vocab_size))).eval()


def decoding_settings(**overrides: object) -> argparse.Namespace:
    """This script's settings (its command-line defaults) with ``overrides``, for callers that import it."""
    return parser().parse_args([], argparse.Namespace(**overrides))


def hf_reference(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model holding ``model``'s weights (``common.hf_twin``), in eval mode."""
    import transformers

    reference = getattr(transformers, family_for_config(model.config).architecture(set()))
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    # no end-of-text token: every run makes all the new tokens (and GPT-2's default 50256 is no id here)
    return hf_twin(
        reference, model.config, state, set(), bos_token_id=None, eos_token_id=None, pad_token_id=0
    ).eval()


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


def measure_model(name: str, args: argparse.Namespace) -> dict:
    """Time the four ways on ``args.device``: tokens/s and seconds per run by way, and where each
    way's continuation first differs from lmforge's with the cache (None: identical)."""
    device = torch.device(args.device)
    model = our_model(name, args.vocab_size)
    twin = hf_reference(model).to(device)
    model.to(device)
    prompt = torch.randint(
        0, args.vocab_size, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(1)
    )

    new = args.new_tokens

    def ours(use_cache: bool) -> Callable[[], list[int]]:
        return lambda: generate(model, prompt.tolist(), new, use_cache=use_cache)[0]

    def theirs(use_cache: bool) -> Callable[[], list[int]]:
        def run() -> list[int]:
            with torch.inference_mode():
                out = twin.generate(
                    prompt.to(device),
                    attention_mask=torch.ones_like(prompt, device=device),
                    do_sample=False,
                    max_new_tokens=new,
                    min_new_tokens=new,
                    use_cache=use_cache,
                )
            return out[0, prompt.shape[1] :].tolist()

        return run

    ways = dict(zip(WAYS, (ours(True), ours(False), theirs(True), theirs(False)), strict=True))
    for run in ways.values():  # warm-up
        run()
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    outputs: dict[str, list[int]] = {}
    for _ in range(args.repeats):
        for way, run in ways.items():
            start = time.perf_counter()
            outputs[way] = run()
            times[way].append(time.perf_counter() - start)
    c = model.config
    return {
        "model": name,
        "shape": f"{c.n_layers} layers x {c.d_model}, {c.n_heads} heads ({c.kv_heads} key/value)",
        "parameters": model.num_parameters(),
        "tokens_per_s": {way: new / statistics.median(times[way]) for way in WAYS},
        "seconds": times,
        "first_difference": {way: first_difference(outputs[WAYS[0]], outputs[way]) for way in WAYS[1:]},
    }


def model_lines(result: dict, args: argparse.Namespace) -> list[str]:
    """One model's section: the table of the four ways, the ratios against the targets, agreement."""
    rate, times = result["tokens_per_s"], result["seconds"]
    vs_hf = rate[WAYS[0]] / rate[WAYS[2]]
    vs_no_cache = rate[WAYS[0]] / rate[WAYS[1]]
    lines = [
        f"### `{result['model']}`: {result['shape']}, vocabulary {args.vocab_size}, "
        f"{result['parameters'] / 1e6:.1f} M parameters",
        "",
        "| way | tokens/s (median) | seconds per run | runs (s) |",
        "|---|---:|---:|---|",
    ]
    for way in WAYS:
        runs = ", ".join(f"{t:.2f}" for t in times[way])
        lines.append(f"| {way} | {rate[way]:,.0f} | {statistics.median(times[way]):.2f} | {runs} |")
    lines += [
        "",
        f"- KV cache against HF `generate()` with its cache: {verdict(vs_hf, TARGET_VS_HF)}",
        f"- KV cache against our decoding without it: {verdict(vs_no_cache, TARGET_VS_NO_CACHE)}",
        f"- HF `generate()` with its cache against without: {rate[WAYS[2]] / rate[WAYS[3]]:.2f}x",
    ]
    for way, where in result["first_difference"].items():
        agree = "identical" if where is None else f"first differs at new token {where}"
        lines.append(f"- continuation of {way} against lmforge, KV cache: {agree}")
    return lines


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gpt_mini", "llama_mini"])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=8192, help="the default runs' tokenizer size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    return parser


def main() -> None:
    args = parser().parse_args()
    where = "CPU" if args.device == "cpu" else torch.cuda.get_device_name(args.device)
    lines = [
        "## Greedy decoding: KV cache against `generate()` and against no cache",
        "",
        f"`{command()}` ({torch.get_num_threads()} thread(s), torch {torch.__version__}, fp32, {where}). "
        f"Batch 1, a prompt of {args.prompt_tokens} random tokens, {args.new_tokens} new tokens (greedy, "
        f"no early stop); the same weights on both sides; warm-up, then the four ways alternate, "
        f"median of {args.repeats} runs. Tokens/s = new tokens / the whole call's time.",
        "",
    ]
    for name in args.models:
        lines += [*model_lines(measure_model(name, args), args), ""]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"Load average at the end (1, 5, 15 min): {load}; above 1 per core, other work shared it.")
    write_section("decode", "\n".join(lines))


if __name__ == "__main__":
    main()
