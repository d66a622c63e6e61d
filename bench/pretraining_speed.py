"""Side-by-side training throughput of two choices behind the default BERT pretraining run.

Each pair runs in this process with the same model, optimiser and batch size, after warm-up, the
two variants alternating step by step so that both see the same machine state. Rates are totals
over the timed steps; the time of a step is the median.

  1. MLM head on the masked positions only (what lmforge does) vs on every position, same batches.
  2. Batches grouped by length (what lmforge does) vs shuffled batches, in real (non-padding)
     tokens per second.

Usage: OMP_NUM_THREADS=1 python bench/pretraining_speed.py [--steps 60] [--model bert_tiny]
       [--batch-size 64] [--seq-len 64]   (defaults: those of the default run)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lmforge.objectives import IGNORE_INDEX
from lmforge.run.config import register_resolvers
from lmforge.tasks import BertPretraining

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3


def sparse_head_loss(task: BertPretraining, batch: dict) -> torch.Tensor:
    return task.losses(batch)["loss"]


def full_head_loss(task: BertPretraining, batch: dict) -> torch.Tensor:
    """The MLM loss computed the dense way: vocabulary logits at every position."""
    hidden = task(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    logits = task.mlm_head(hidden, task.backbone.token_embedding.weight)
    mlm = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
    return mlm + F.cross_entropy(task.nsp_head(hidden), batch["next_sentence_label"])


def padded_tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


def real_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


class Variant:
    """A model with its own optimiser, stepping on its own batches and timing each step."""

    def __init__(self, name: str, model: dict, loss: Callable, batches: list[dict]) -> None:
        torch.manual_seed(0)
        self.name, self.loss, self.batches = name, loss, batches
        self.task = BertPretraining(model, {"nsp": True}, {"lr": 1e-3})
        self.optimizer = torch.optim.AdamW(self.task.parameters(), lr=1e-3)
        self.times: list[float] = []

    def step(self, index: int) -> None:
        start = time.perf_counter()
        self.loss(self.task, self.batches[index]).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if index >= WARMUP:
            self.times.append(time.perf_counter() - start)

    def rate(self, count: Callable[[dict], int]) -> float:
        """Tokens per second over all timed steps (batches of varied width make a median misleading)."""
        return sum(count(b) for b in self.batches[WARMUP:]) / sum(self.times)


def compare(a: Variant, b: Variant, count: Callable[[dict], int], unit: str) -> None:
    for index in range(len(a.batches)):
        a.step(index)
        b.step(index)
    for variant in (a, b):
        fill = sum(real_tokens(x) for x in variant.batches) / sum(padded_tokens(x) for x in variant.batches)
        print(
            f"  {variant.name:<34} {variant.rate(count):>9,.0f} {unit} tokens/s  "
            f"{statistics.median(variant.times) * 1000:>5.0f} ms/step  {fill:>4.0%} of each batch is text"
        )
    print(f"  ratio: {a.rate(count) / b.rate(count):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant")
    parser.add_argument("--model", default="bert_tiny", help="a preset of conf/model")
    parser.add_argument("--batch-size", type=int, help="examples per batch (default: the default run's)")
    parser.add_argument("--seq-len", type=int, help="tokens per example (default: the default run's)")
    args = parser.parse_args()

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"model={args.model}"]
            + ([f"data.batch_size={args.batch_size}"] if args.batch_size else [])
            + ([f"data.max_seq_len={args.seq_len}"] if args.seq_len else []),
        )

    def loader(group_by_length: bool) -> tuple[int, list[dict]]:
        datamodule = instantiate(cfg.data, group_by_length=group_by_length)
        datamodule.setup()
        steps = range(args.steps + WARMUP)
        return datamodule.vocab_size, [b for _, b in zip(steps, datamodule.train_dataloader(), strict=False)]

    vocab_size, grouped = loader(True)
    _, shuffled = loader(False)
    model = {**OmegaConf.to_container(cfg.model, resolve=True), "vocab_size": vocab_size}
    print(
        f"{args.model}, batches of {cfg.data.batch_size} x up to {cfg.data.max_seq_len} tokens, "
        f"vocabulary {vocab_size}, {torch.get_num_threads()} thread(s), {args.steps} timed steps each"
    )
    print("1. MLM head, on the same batches")
    compare(
        Variant("masked positions only (lmforge)", model, sparse_head_loss, grouped),
        Variant("every position", model, full_head_loss, grouped),
        padded_tokens,
        "padded",
    )
    print("2. Batching, same model")
    compare(
        Variant("grouped by length (lmforge)", model, sparse_head_loss, grouped),
        Variant("shuffled", model, sparse_head_loss, shuffled),
        real_tokens,
        "real",
    )


if __name__ == "__main__":
    main()
