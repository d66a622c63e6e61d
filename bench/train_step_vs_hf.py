"""Training-step throughput of lmforge's models against Hugging Face ``transformers``, side by side.

For each preset and sequence length, one process builds our task and the Hugging Face model of the
same shape (``attn_implementation="sdpa"``, the same weights, copied through ``lmforge.io.hf``), gives
both the same batches, and times forward + backward + AdamW step, alternating the two step by step
after a warm-up so that both see the same machine state. Figures are tokens per second at the median
step time.

- ``bert_mini`` (MLM + NSP) against ``BertForPreTraining``: 15 % of the positions of each example
  carry an MLM label (-100 elsewhere, as Hugging Face expects), plus an NSP label per pair.
- ``gpt_mini`` against ``GPT2LMHeadModel``, ``llama_mini`` against ``LlamaForCausalLM``: next-token
  loss over every position.

Each side uses the optimiser its own training loop builds: ours is ``lmforge.optim.build_optimizer``;
theirs is what ``transformers.Trainer`` builds by default (fused ``torch.optim.AdamW``, no weight
decay on biases and norms). Dropout is each preset's (0.1 for BERT and GPT-2, none for LLaMA), on in
both. A batch holds the same number of tokens at both lengths (16 x 128, 4 x 512).

Usage: OMP_NUM_THREADS=1 python bench/train_step_vs_hf.py [--steps 10] [--vocab-size 8192]
       [--models bert_mini gpt_mini llama_mini] [--seq-lens 128 512] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from common import command, hf_twin, model_settings, write_section

from lmforge.cli.runtime import keep_freed_memory
from lmforge.optim import OptimizerSettings, build_optimizer
from lmforge.tasks import BertPretraining, CausalLMPretraining

TOKENS_PER_BATCH = 2048
WARMUP = 3
MASKED_SHARE = 0.15
TARGETS = {"bert_mini": 1.4, "gpt_mini": 1.25, "llama_mini": 1.1}
REFERENCES = {
    "bert_mini": transformers.BertForPreTraining,
    "gpt_mini": transformers.GPT2LMHeadModel,
    "llama_mini": transformers.LlamaForCausalLM,
}


@dataclass
class Side:
    """One model with its optimiser and loss, timing each step it takes."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    cpu_times: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)

    def step(self, batch: dict[str, torch.Tensor], timed: bool) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.loss(batch).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            self.cpu_times.append(time.process_time() - cpu)
            self.wall_times.append(time.perf_counter() - wall)


def make_batch(preset: str, batch_size: int, seq_len: int, vocab: int, seed: int) -> dict[str, torch.Tensor]:
    """Random tokens (ids 5 and up: clear of the special tokens) with the labels each objective needs.

    Causal-LM labels are the next tokens, as our data pipeline gives them; Hugging Face is given the
    inputs as labels and shifts them itself (so it scores one position fewer per row)."""
    generator = torch.Generator().manual_seed(seed)
    if preset.startswith("bert"):
        input_ids = torch.randint(5, vocab, (batch_size, seq_len), generator=generator)
        n_masked = round(MASKED_SHARE * seq_len)
        positions = torch.rand(batch_size, seq_len, generator=generator).argsort(-1)[:, :n_masked]
        labels = torch.full_like(input_ids, -100).scatter(1, positions, input_ids.gather(1, positions))
        token_type_ids = (torch.arange(seq_len) >= seq_len // 2).long().expand(batch_size, -1).contiguous()
        return {
            "input_ids": input_ids.scatter(1, positions, 4),  # 4: [MASK] of our WordPiece vocabularies
            "token_type_ids": token_type_ids,
            "attention_mask": torch.ones_like(input_ids),
            "labels": labels,
            "next_sentence_label": torch.randint(0, 2, (batch_size,), generator=generator),
        }
    stream = torch.randint(5, vocab, (batch_size, seq_len + 1), generator=generator)
    return {"input_ids": stream[:, :-1], "labels": stream[:, 1:]}


def hf_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """What ``transformers.Trainer`` builds by default on torch >= 2.8 (``adamw_torch_fused``)."""
    decay = set(transformers.Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def build_pair(preset: str, vocab: int) -> tuple[Side, Side]:
    """Our task and the Hugging Face model of the same shape, with the same starting weights."""
    torch.manual_seed(0)
    settings = OptimizerSettings(lr=1e-4)
    model = model_settings(preset, vocab_size=vocab)
    bert = preset.startswith("bert")
    if bert:
        ours = BertPretraining(model, {"nsp": True}, {"lr": settings.lr})
    else:
        ours = CausalLMPretraining(model, {}, {"lr": settings.lr})
    heads = {"mlm_head", "nsp_head"} if bert else set()
    state = {k: v for k, v in ours.state_dict().items() if k.split(".")[0] in ("backbone", *heads)}
    theirs = hf_twin(REFERENCES[preset], ours.config, state, heads)
    ours.train()
    theirs.train()

    def our_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ours.losses(batch)["loss"] if bert else ours.loss(batch)

    def their_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if bert:
            return theirs(**batch).loss
        return theirs(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss

    return (
        Side("lmforge", ours, build_optimizer(ours, settings), our_loss),
        Side(
            REFERENCES[preset].__name__,
            theirs,
            hf_optimizer(theirs, settings.lr, settings.weight_decay),
            their_loss,
        ),
    )


def same_loss(ours: Side, theirs: Side, batch: dict[str, torch.Tensor]) -> float:
    """The gap between the two losses of one batch without dropout: a check that the shapes and weights
    agree. Our causal-LM labels lose their last column, which Hugging Face's shift leaves unscored."""
    ours.model.eval()
    theirs.model.eval()
    our_batch = batch
    if "next_sentence_label" not in batch:
        labels = batch["labels"].clone()
        labels[:, -1] = -100
        our_batch = {**batch, "labels": labels}
    with torch.no_grad():
        gap = abs(ours.loss(our_batch).item() - theirs.loss(batch).item())
    ours.model.train()
    theirs.model.train()
    return gap


def run_case(preset: str, seq_len: int, vocab: int, steps: int) -> dict[str, Any]:
    batch_size = TOKENS_PER_BATCH // seq_len
    ours, theirs = build_pair(preset, vocab)
    batches = [make_batch(preset, batch_size, seq_len, vocab, seed) for seed in range(WARMUP + steps)]
    gap = same_loss(ours, theirs, batches[0])
    for index, batch in enumerate(batches):
        first, second = (ours, theirs) if index % 2 == 0 else (theirs, ours)
        first.step(batch, index >= WARMUP)
        second.step(batch, index >= WARMUP)
    return {
        "preset": preset,
        "reference": theirs.name,
        "shape": f"{batch_size} x {seq_len}",
        "ours": TOKENS_PER_BATCH / statistics.median(ours.cpu_times),
        "theirs": TOKENS_PER_BATCH / statistics.median(theirs.cpu_times),
        "wall_ratio": statistics.median(theirs.wall_times) / statistics.median(ours.wall_times),
        "loss_gap": gap,
    }


MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
PROFILED_STEPS = 3


@dataclass
class Profile:
    """Where one side's training step goes, per step: all CPU ops, the matrix products, the top others."""

    name: str
    total_ms: float
    products_ms: float
    others: list[tuple[str, float]]
    table: str

    def summary(self) -> str:
        others = ", ".join(f"{name} {ms:.0f}" for name, ms in self.others)
        return (
            f"{self.name} {self.total_ms:.0f} ms a step, matrix products {self.products_ms:.0f} ms "
            f"({self.products_ms / self.total_ms:.0%}); then {others}"
        )


def profile_sides(preset: str, seq_len: int, vocab: int) -> list[Profile]:
    """Profile a few training steps of each side (``torch.profiler``, CPU ops, self time)."""
    batch_size = TOKENS_PER_BATCH // seq_len
    batches = [
        make_batch(preset, batch_size, seq_len, vocab, seed) for seed in range(WARMUP + PROFILED_STEPS)
    ]
    profiles = []
    for side in build_pair(preset, vocab):
        for batch in batches[:WARMUP]:
            side.step(batch, False)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for batch in batches[WARMUP:]:
                side.step(batch, False)
        events = sorted(prof.key_averages(), key=lambda event: -event.self_cpu_time_total)
        per_step = {event.key: event.self_cpu_time_total / 1e3 / PROFILED_STEPS for event in events}
        profiles.append(
            Profile(
                side.name,
                sum(per_step.values()),
                sum(ms for key, ms in per_step.items() if key in MATRIX_PRODUCTS),
                [(key, ms) for key, ms in per_step.items() if key not in MATRIX_PRODUCTS][:4],
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15),
            )
        )
    return profiles


def section(
    rows: list[dict[str, Any]], profiles: dict[tuple[str, str], list[Profile]], steps: int, vocab: int
) -> str:
    lines = [
        "## Training step: lmforge against Hugging Face transformers",
        "",
        f"Forward + backward + AdamW step on {TOKENS_PER_BATCH} tokens a batch, vocabulary {vocab}, fp32, "
        f"{torch.get_num_threads()} thread(s); the two sides alternate step by step in one process, "
        f"{steps} timed steps each after {WARMUP} warm-up steps. Tokens per second are at the median CPU "
        "time of a step (with one thread, the wall time of an idle machine, but steady when other "
        "processes share the cores); the wall-clock ratio is there to compare. Dropout as in each "
        "preset (0.1 for BERT and GPT-2, none for LLaMA), on in both; each side with its own training "
        "loop's AdamW (lmforge.optim.build_optimizer; transformers.Trainer's default, fused). The loss "
        "gap is the difference of the two losses of the first batch in eval mode, from the same weights.",
        "",
        "| model | reference | batch | lmforge tokens/s | reference tokens/s | ratio | target | "
        "wall-clock ratio | loss gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["ours"] / row["theirs"]
        target = TARGETS[row["preset"]]
        verdict = "met" if ratio >= target else f"missed by {target - ratio:.2f}"
        lines.append(
            f"| `{row['preset']}` | `{row['reference']}` | {row['shape']} | {row['ours']:,.0f} | "
            f"{row['theirs']:,.0f} | {ratio:.2f}x | {target}x ({verdict}) | {row['wall_ratio']:.2f}x | "
            f"{row['loss_gap']:.1e} |"
        )
    if profiles:
        lines += [
            "",
            f"Where a target is missed, `torch.profiler` on {PROFILED_STEPS} steps of each side at the "
            "first length that missed (self CPU time per step, ms). Matrix products (mm, addmm, bmm) run "
            "in the same BLAS kernels on both sides; the rest is where one library can be leaner:",
            "",
        ]
        for (preset, shape), sides in profiles.items():
            lines.append(f"- `{preset}`, {shape}: " + "; ".join(profile.summary() for profile in sides) + ".")
    lines += ["", f"Command: `{command()}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side and case")
    parser.add_argument("--vocab-size", type=int, default=8192, help="the default runs' tokenizer size")
    parser.add_argument("--models", nargs="+", default=list(REFERENCES), choices=list(REFERENCES))
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[128, 512])
    parser.add_argument(
        "--profile", action="store_true", help="profile each side's step instead of comparing"
    )
    args = parser.parse_args()
    keep_freed_memory()  # what train.py does; both sides share the process, so both gain
    transformers.logging.set_verbosity_error()  # GPT-2's default token ids lie outside a small vocabulary
    if args.profile:
        for preset in args.models:
            for seq_len in args.seq_lens:
                for profile in profile_sides(preset, seq_len, args.vocab_size):
                    print(f"{preset}, {TOKENS_PER_BATCH // seq_len} x {seq_len}: {profile.summary()}")
                    print(profile.table)
        return
    rows, profiles = [], {}
    for preset in args.models:
        for seq_len in args.seq_lens:
            row = run_case(preset, seq_len, args.vocab_size, args.steps)
            print(f"{preset} {row['shape']}: {row['ours']:,.0f} vs {row['theirs']:,.0f} tokens/s", flush=True)
            rows.append(row)
            if row["ours"] / row["theirs"] < TARGETS[preset] and preset not in {p for p, _ in profiles}:
                profiles[preset, row["shape"]] = profile_sides(preset, seq_len, args.vocab_size)
    write_section("train_step", section(rows, profiles, args.steps, args.vocab_size))


if __name__ == "__main__":
    main()
