"""The MLM + NSP data pipeline's throughput on one core, against the model that consumes it and
against ``transformers``' ``DataCollatorForLanguageModeling``, side by side in one process.

The corpus and batches are those of the default run (``data=stdlib``: 64 examples of up to 64
tokens, grouped by length, padded to a multiple of 8), from ``MaskedLMDataModule`` itself: its
sampler's order of the first epoch, its ``BertPretrainingDataset`` and its ``MaskedLMCollator``.
Timed, each over the same ``--batches`` batches, alternating batch by batch after a warm-up:

  ours, collation       ``MaskedLMCollator(examples)``: per example a generator seeded by
                        (seed, key), choosing 15 % of the maskable tokens and 80/10/10; padding;
                        tensors (input ids, token types, attention mask, labels, NSP labels)
  HF, collation         ``DataCollatorForLanguageModeling(mlm_probability=0.15,
                        pad_to_multiple_of=8)`` on the same examples as lists of ids (its natural
                        input; the conversion is not timed): padding, its special-tokens mask,
                        Bernoulli 15 % and 80/10/10; tensors of the same keys
  ours, examples        ``dataset[key]`` for the batch's keys: NSP pairing (split point, IsNext or a
                        NotNext partner from other documents), truncation, [CLS]/[SEP], token types
  ours, sampler         the length-grouped order of an epoch (it draws each example once to learn
                        its length), per batch: its time / the epoch's batches

and the consumer: a ``--model`` (bert_mini) pretraining step (forward, backward, AdamW) on those
batches. Tokens/s counts the real (non-padding) tokens of the batches; every figure is the median
per batch (the sampler's is per epoch).

Usage: OMP_NUM_THREADS=1 python bench/data_pipeline_vs_hf.py [--batches 60] [--model bert_mini]
       [--steps 15]
Writes bench/results/data_pipeline.md (``common.write_section``) and prints it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from common import ROOT, command, verdict, write_section
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lmforge.run.config import register_resolvers
from lmforge.tasks import BertPretraining

TARGET_VS_HF = 2.0  # our collation against DataCollatorForLanguageModeling's
WARMUP = 3


def hf_collator(datamodule: Any) -> Callable[[list[dict]], dict]:
    """``DataCollatorForLanguageModeling`` over our WordPiece tokenizer, with the same padding."""
    import transformers

    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=datamodule.tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    return transformers.DataCollatorForLanguageModeling(
        tokenizer, mlm=True, mlm_probability=0.15, pad_to_multiple_of=datamodule.pad_to_multiple_of
    )


def as_lists(examples: list[dict]) -> list[dict]:
    return [
        {
            "input_ids": e["input_ids"].tolist(),
            "token_type_ids": e["token_type_ids"].tolist(),
            "next_sentence_label": e["next_sentence_label"],
        }
        for e in examples
    ]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="timed batches of each way")
    parser.add_argument("--model", default="bert_mini", help="the consumer, a preset of conf/model")
    parser.add_argument("--steps", type=int, default=15, help="timed training steps of the consumer")
    args = parser.parse_args()

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}"])
    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    dataset, collator = datamodule.train_set, datamodule.collator
    loader = datamodule.train_dataloader()
    sampler_seconds, order = timed(lambda: list(loader.sampler))
    count = WARMUP + args.batches
    size = datamodule.batch_size
    keys = [order[i * size : (i + 1) * size] for i in range(count)]
    reference = hf_collator(datamodule)

    times: dict[str, list[float]] = {"examples": [], "ours": [], "hf": []}
    tokens, widths, batches = [], [], []
    for index, batch_keys in enumerate(keys):
        seconds_examples, examples = timed(lambda k=batch_keys: [dataset[key] for key in k])
        lists = as_lists(examples)
        seconds_ours, batch = timed(lambda e=examples: collator(e))
        seconds_hf, theirs = timed(lambda e=lists: reference(e))
        assert theirs["input_ids"].shape == batch["input_ids"].shape, "the two collators pad differently"
        if index >= WARMUP:
            for name, seconds in (("examples", seconds_examples), ("ours", seconds_ours), ("hf", seconds_hf)):
                times[name].append(seconds)
            tokens.append(int(batch["attention_mask"].sum()))
            widths.append(batch["input_ids"].shape[1])
            batches.append(batch)

    model = {**OmegaConf.to_container(cfg.model, resolve=True), "vocab_size": datamodule.vocab_size}
    task = BertPretraining(model, {"nsp": True}, {"lr": 1e-3})
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
    step_times = []
    for index in range(WARMUP + args.steps):
        batch = batches[index % len(batches)]

        def step(b: dict = batch) -> None:
            task.losses(b)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds, _ = timed(step)
        if index >= WARMUP:
            step_times.append((seconds, int(batch["attention_mask"].sum())))

    per_batch_tokens = statistics.median(tokens)
    sampler_per_batch = sampler_seconds / (len(order) // size)
    rate = {name: per_batch_tokens / statistics.median(values) for name, values in times.items()}
    full = per_batch_tokens / (
        statistics.median(times["examples"]) + statistics.median(times["ours"]) + sampler_per_batch
    )
    model_rate = statistics.median(n / s for s, n in step_times)
    vs_hf = rate["ours"] / rate["hf"]

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## MLM + NSP data pipeline against the model and against `DataCollatorForLanguageModeling`",
        "",
        f"`{command()}` ({torch.get_num_threads()} thread(s); load average at the end {load}: above 1 "
        "per core, other work shared it). The default "
        f"run's data (`data=stdlib`, vocabulary {datamodule.vocab_size}): {len(dataset):,} training "
        f"runs of sentences, batches of {size} examples of up to {datamodule.max_seq_len} tokens grouped "
        f"by length, padded to a multiple of {datamodule.pad_to_multiple_of}; {args.batches} batches "
        f"of the first epoch's order (widths {min(widths)}-{max(widths)}, median "
        f"{per_batch_tokens:,.0f} real tokens a batch), the ways alternating batch by batch after "
        f"{WARMUP} warm-up batches; medians per batch.",
        "",
        "| what | includes | ms per batch | real tokens/s |",
        "|---|---|---:|---:|",
        f"| ours, collation | `MaskedLMCollator`: per-(seed, key) masking, padding, tensors | "
        f"{statistics.median(times['ours']) * 1e3:.2f} | {rate['ours']:,.0f} |",
        f"| HF, collation | `DataCollatorForLanguageModeling`: padding, special-tokens mask, masking, "
        f"tensors | {statistics.median(times['hf']) * 1e3:.2f} | {rate['hf']:,.0f} |",
        f"| ours, examples | `BertPretrainingDataset[key]`: NSP pairing, truncation, special tokens | "
        f"{statistics.median(times['examples']) * 1e3:.2f} | {rate['examples']:,.0f} |",
        f"| ours, sampler | length-grouped order: {sampler_seconds:.2f} s an epoch of "
        f"{len(order) // size} batches | {sampler_per_batch * 1e3:.2f} | "
        f"{per_batch_tokens / sampler_per_batch:,.0f} |",
        f"| ours, full path | sampler + examples + collation | {per_batch_tokens / full * 1e3:.2f} | "
        f"{full:,.0f} |",
        f"| `{args.model}` training step | forward, backward, AdamW ({args.steps} steps) | "
        f"{statistics.median(s for s, _ in step_times) * 1e3:.1f} | {model_rate:,.0f} |",
        "",
        f"- our collation against `DataCollatorForLanguageModeling`: {verdict(vs_hf, TARGET_VS_HF)}",
        f"- our full path against the model's consumption: **{full / model_rate:.1f}x** as many "
        f"tokens/s as a `{args.model}` step takes (one core each: above 1, the data never waits)",
    ]
    write_section("data_pipeline", "\n".join(lines))


if __name__ == "__main__":
    main()
