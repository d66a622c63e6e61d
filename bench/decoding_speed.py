"""Greedy decoding with the KV cache against decoding without it, side by side in one process.

Both decode the same prompt with the same model (``conf/model/<model>.yaml``, randomly initialised:
speed does not depend on the weights) to the same number of new tokens, alternating run by run so
both see the same machine state, after a warm-up; the time of each is the median of ``--repeats``.
Without the cache each new token reruns the whole sequence so far (only the last position goes
through the LM head in both). The two continuations must be identical.

Usage: OMP_NUM_THREADS=1 python bench/decoding_speed.py [--model gpt_mini] [--new-tokens 256]
       [--prompt-tokens 32] [--vocab-size 8192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lmforge.decoding import generate
from lmforge.models import build_backbone
from lmforge.resolvers import register_resolvers

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt_mini")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=8192, help="the default runs' tokenizer size")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}", f"model.vocab_size={args.vocab_size}"])
    torch.manual_seed(0)
    model = build_backbone(instantiate(cfg.model)).eval()
    prompt = [torch.randint(0, args.vocab_size, (args.prompt_tokens,)).tolist()]

    def decode(use_cache: bool) -> tuple[float, list[int]]:
        start = time.perf_counter()
        out = generate(model, prompt, args.new_tokens, use_cache=use_cache)[0]
        return time.perf_counter() - start, out

    decode(True), decode(False)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    outputs = {}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            seconds, outputs[use_cache] = decode(use_cache)
            times[use_cache].append(seconds)
    assert outputs[True] == outputs[False], "the cached and uncached continuations differ"

    cached, uncached = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"{args.model} ({model.num_parameters() / 1e6:.1f} M parameters, vocabulary {args.vocab_size}), "
        f"greedy, prompt {args.prompt_tokens} + {args.new_tokens} new tokens, batch 1, "
        f"{torch.get_num_threads()} thread(s), median of {args.repeats}:"
    )
    print(f"  with the KV cache     {cached:7.2f} s  {args.new_tokens / cached:8.1f} tokens/s")
    print(f"  without the cache     {uncached:7.2f} s  {args.new_tokens / uncached:8.1f} tokens/s")
    print(f"  cache speed-up        {uncached / cached:7.2f}x  (identical continuations)")


if __name__ == "__main__":
    main()
