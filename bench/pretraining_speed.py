"""Side-by-side training throughput of the choices behind the default BERT pretraining run.

Each pair runs in this process on the same batches, model and optimiser settings, after warm-up,
alternating between the two so that both see the same machine state; medians are reported.

  1. MLM head on the masked positions only (what lmforge does) vs on every position.
  2. Batches grouped by length (what lmforge does) vs shuffled batches, in real tokens per second.

Usage: OMP_NUM_THREADS=1 python bench/pretraining_speed.py [--steps 20] [--model bert_tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lmforge.objectives import IGNORE_INDEX
from lmforge.resolvers import register_resolvers
from lmforge.tasks import BertPretraining

ROOT = Path(__file__).resolve().parents[1]


def full_head_loss(task: BertPretraining, batch: dict) -> torch.Tensor:
    """The MLM loss computed the dense way: vocabulary logits at every position."""
    hidden = task(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    logits = task.mlm_head(hidden, task.backbone.token_embedding.weight)
    mlm = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
    return mlm + F.cross_entropy(task.nsp_head(hidden), batch["next_sentence_label"])


def sparse_head_loss(task: BertPretraining, batch: dict) -> torch.Tensor:
    return task.losses(batch)["loss"]


def timed_step(task, optimizer, loss_fn, batch) -> float:
    start = time.perf_counter()
    loss_fn(task, batch).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def compare(name_a, run_a, name_b, run_b, batches, tokens, warmup: int = 3) -> None:
    for batch in batches[:warmup]:
        run_a(batch)
        run_b(batch)
    times_a, times_b = [], []
    for batch in batches[warmup:]:
        times_a.append(run_a(batch))
        times_b.append(run_b(batch))
    a, b = statistics.median(times_a), statistics.median(times_b)
    per_step = tokens(batches[warmup:])
    print(f"  {name_a:<34} {per_step / a:>10,.0f} tokens/s  ({a * 1000:.0f} ms/step)")
    print(f"  {name_b:<34} {per_step / b:>10,.0f} tokens/s  ({b * 1000:.0f} ms/step)")
    print(f"  ratio: {b / a:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--model", default="bert_tiny", help="a preset of conf/model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"model={args.model}",
                f"data.batch_size={args.batch_size}",
                f"data.max_seq_len={args.seq_len}",
            ],
        )

    def loader(group_by_length: bool) -> list[dict]:
        datamodule = instantiate(cfg.data, group_by_length=group_by_length)
        datamodule.setup()
        return [b for _, b in zip(range(args.steps + 3), datamodule.train_dataloader(), strict=False)]

    batches, shuffled = loader(True), loader(False)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model["vocab_size"] = instantiate(cfg.data).vocab_size

    def task_and_optimizer():
        torch.manual_seed(0)
        task = BertPretraining(model, {"nsp": True}, {"lr": 1e-3})
        return task, torch.optim.AdamW(task.parameters(), lr=1e-3)

    def padded(bs):
        return sum(b["input_ids"].numel() for b in bs) / len(bs)

    def real(bs):
        return sum(int(b["attention_mask"].sum()) for b in bs) / len(bs)

    print(
        f"{args.model}, batch {args.batch_size} x {args.seq_len}, vocabulary {model['vocab_size']}, "
        f"{torch.get_num_threads()} thread(s), {args.steps} timed steps each"
    )
    print("1. MLM head (padded tokens per second, same batches)")
    sparse, sparse_opt = task_and_optimizer()
    dense, dense_opt = task_and_optimizer()
    compare(
        "masked positions only (lmforge)",
        lambda b: timed_step(sparse, sparse_opt, sparse_head_loss, b),
        "every position",
        lambda b: timed_step(dense, dense_opt, full_head_loss, b),
        batches,
        padded,
    )
    print("2. Batching (real, non-padding tokens per second)")
    task_a, opt_a = task_and_optimizer()
    task_b, opt_b = task_and_optimizer()
    grouped_times, shuffled_times = [], []
    for i, (g, s) in enumerate(zip(batches, shuffled, strict=True)):
        tg = timed_step(task_a, opt_a, sparse_head_loss, g)
        ts = timed_step(task_b, opt_b, sparse_head_loss, s)
        if i >= 3:
            grouped_times.append(tg)
            shuffled_times.append(ts)
    rate_g = real(batches[3:]) / statistics.median(grouped_times)
    rate_s = real(shuffled[3:]) / statistics.median(shuffled_times)
    fill_g = real(batches) / padded(batches)
    fill_s = real(shuffled) / padded(shuffled)
    for name, rate, fill in (("grouped by length (lmforge)", rate_g, fill_g), ("shuffled", rate_s, fill_s)):
        print(f"  {name:<34} {rate:>10,.0f} tokens/s  ({fill:.0%} of the batch is text)")
    print(f"  ratio: {rate_g / rate_s:.2f}x")


if __name__ == "__main__":
    main()
