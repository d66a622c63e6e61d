"""``make mutate``: do the tests catch the bugs they claim to? Each mutation below is a one-line bug put
into a copy of the tree; the tests named with it must fail on it.

The tracked (and untracked, not ignored) files are copied to a temporary folder: not the venv, data or
logs. The named tests of every mutation first run on the unchanged copy (they must pass there, or a
failure would prove nothing); then each mutation alone is applied, its tests run against the copy
(``PYTHONPATH=<copy>/src``, ``OMP_NUM_THREADS=1``, ``-x -q -p no:cacheprovider``) and the file is put
back. A table says which were caught, and how long each took; the exit status is 1 if any was not.
A mutation whose old text is not in its file exactly once is refused before anything runs, so the list
cannot rot silently when the code changes.

    .venv/bin/python scripts/mutate.py                 # all of them
    .venv/bin/python scripts/mutate.py rope-sign lora-b  # some, by name
    .venv/bin/python scripts/mutate.py --list          # names and files

Not part of CI or ``make test``: it takes a few minutes (docs/testing.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # one mutation's tests; a mutation that makes them hang counts as not caught


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the tree's root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, ``-k`` expressions


MUTATIONS = [
    Mutation(
        "attention-no-scale",  # scores not divided by sqrt(d_k)
        "src/lmforge/models/attention.py",
        "is_causal=is_causal and attn_mask is None,",
        "is_causal=is_causal and attn_mask is None, scale=1.0,",
        ("tests/unit/io/hf/test_import.py::test_bert_mlm_and_nsp_logits_match",),
    ),
    Mutation(
        "lora-b-nonzero",  # LoRA's B starts random: the model no longer starts as its base
        "src/lmforge/peft/lora.py",
        "self.b = nn.Parameter(torch.zeros(out_features, rank))",
        "self.b = nn.Parameter(torch.randn(out_features, rank) * 0.02)",
        (
            "tests/unit/peft/test_peft.py::test_methods_that_start_as_the_identity_give_the_base_outputs_at_every_target",
        ),
    ),
    Mutation(
        "cache-position-offset",  # with a KV cache, each new token takes position 0 again
        "src/lmforge/models/decoder.py",
        "first = start + inserted  #",
        "first = inserted  #",
        ("tests/unit/models/test_decoding.py::test_cached_decoding_gives_the_logits_of_a_full_pass",),
    ),
    Mutation(
        "masking-ratio-ignored",  # the objective's mlm_probability never reaches the collator
        "src/lmforge/data/masked_lm_datamodule.py",
        "mlm_probability=self.mlm_probability,",
        "",
        ("tests/unit/run/test_registry.py",),
    ),
    Mutation(
        "nsp-same-document",  # NotNext segment B drawn from A's own document
        "src/lmforge/data/bert_dataset.py",
        'current = int(np.searchsorted(cumulative, draw, side="right")) - 1',
        "current, draw = position, int(cumulative[position]) + draw % int(counts[position])",
        ("tests/unit/data/test_bert_dataset.py::test_not_next_segment_b_comes_from_other_documents",),
    ),
    Mutation(
        "rope-rotate-half-sign",  # the rotation turns the other way
        "src/lmforge/models/rotary.py",
        "return torch.cat((-second, first), dim=-1)",
        "return torch.cat((second, -first), dim=-1)",
        ("tests/unit/models/test_rotary.py",),
    ),
    Mutation(
        "causal-mask-off",  # a decoder's training pass lets each token see the future
        "src/lmforge/models/decoder.py",
        "return None, True",
        "return None, False",
        ("tests/unit/models/test_decoder.py::test_changing_a_future_token_never_changes_earlier_logits",),
    ),
    Mutation(
        "prefix-not-reaching-attention",  # prefix tuning's keys and values never enter a decoder block
        "src/lmforge/models/decoder.py",
        "cache=layer_cache, prefix=prefix)",
        "cache=layer_cache, prefix=None)",
        ("tests/unit/peft/test_peft.py", "-k", "prefix"),
    ),
    Mutation(
        "nan-skip-still-steps",  # skipped step's gradients zeroed, not dropped: AdamW still moves
        "src/lmforge/run/callbacks.py",
        "parameter.grad = None",
        "parameter.grad.zero_()",
        ("tests/integration/test_reliability.py::test_nan_policy_skip_skips_the_step_and_counts_it",),
    ),
    Mutation(
        "meta-init-ignored",  # every rank builds the model in full
        "src/lmforge/tasks/sharding.py",
        'return bool(getattr(strategy, "meta_init", False)) and global_rank != 0',
        "return False",
        (
            "tests/integration/test_strategies.py::test_with_meta_init_fsdp_gives_the_model_of_a_full_build_on_every_rank",
        ),
    ),
    Mutation(
        "compile-ignored",  # compile=true trains the eager backbone
        "src/lmforge/run/build.py",
        "if spec.compile:",
        "if False:",
        ("tests/integration/test_run_options.py::test_compile_true_trains_a_compiled_backbone_that_learns",),
    ),
    Mutation(
        "mlm-labels-every-token",  # unmasked tokens get labels too (no ignore index)
        "src/lmforge/data/masking.py",
        "labels = np.where(chosen, ids, IGNORE_INDEX)",
        "labels = np.where(real, ids, IGNORE_INDEX)",
        ("tests/unit/data/test_masking.py",),
    ),
    Mutation(
        "nsp-weight-ignored",  # the next-sentence loss added at weight 1 whatever objective.nsp_weight says
        "src/lmforge/tasks/masked_lm.py",
        'out["loss"] = mlm_loss + self.nsp_weight * out["nsp_loss"]',
        'out["loss"] = mlm_loss + out["nsp_loss"]',
        ("tests/unit/tasks/test_masked_lm.py",),
    ),
    Mutation(
        "lora-scaling-without-rank",  # the update scaled by alpha, not alpha / rank
        "src/lmforge/peft/lora.py",
        "self.scaling = alpha / rank",
        "self.scaling = alpha",
        ("tests/unit/peft/test_peft.py::test_lora_adds_alpha_over_rank_times_b_a_x_to_its_rows",),
    ),
    Mutation(
        "sft-prompt-trained",  # instruction tuning scores the prompt tokens too, not the response alone
        "src/lmforge/data/sft/encoding.py",
        "labels[: prompt_length - 1] = IGNORE_INDEX",
        "labels[:0] = IGNORE_INDEX",
        ("tests/unit/data/test_sft.py::test_the_labels_mask_exactly_the_prompt_tokens",),
    ),
    Mutation(
        "prompt-words-last-token-only",  # a decoder scores a label word by its last token alone
        "src/lmforge/tasks/prompt_lm.py",
        "[..., 0].sum(-1)",
        "[..., 0][:, -1:].sum(-1)",
        (
            "tests/unit/tasks/test_prompt_lm.py::"
            "test_a_decoder_sums_the_log_probabilities_of_each_words_tokens_after_the_template",
        ),
    ),
]


def tree_files() -> list[str]:
    """The tree as git sees it: tracked files and untracked ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def refuse_stale(mutations: list[Mutation]) -> None:
    """One line and exit status 2 for a mutation whose old text is not in its file exactly once."""
    for mutation in mutations:
        path = ROOT / mutation.file
        count = path.read_text().count(mutation.old) if path.is_file() else 0
        if count != 1:
            where = f"{count} times" if path.is_file() else "a missing file"
            sys.exit(
                f"mutate: {mutation.name}: the old text {mutation.old!r} is in {mutation.file} {where}, "
                "not once: update the mutation in scripts/mutate.py"
            )


def copy_tree(destination: Path) -> None:
    for name in tree_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def test_paths(tests: tuple[str, ...]) -> list[str]:
    """The files and node ids of a mutation's pytest arguments, without its ``-k`` selections."""
    return [t for i, t in enumerate(tests) if t != "-k" and (i == 0 or tests[i - 1] != "-k")]


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """pytest on ``tests`` in the copy: its exit status (124: timed out), the seconds, and what it said
    of the first failure (its first ``E`` line) or, without one, its last lines."""
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, time.perf_counter() - started, f"timed out after {TIMEOUT_S} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    said = errors[0][:160] if errors else "\n".join(lines[-5:])
    return done.returncode, time.perf_counter() - started, said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args()
    known = {mutation.name: mutation for mutation in MUTATIONS}
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name:<32} {mutation.file}")
        return 0
    unknown = [name for name in args.names if name not in known]
    if unknown:
        sys.exit(f"mutate: no mutation named {', '.join(unknown)} (see --list)")
    chosen = [known[name] for name in args.names] if args.names else MUTATIONS
    refuse_stale(chosen)

    with tempfile.TemporaryDirectory(prefix="lmforge-mutate-") as folder:
        copy = Path(folder)
        copy_tree(copy)
        baseline = tuple(dict.fromkeys(t for m in chosen for t in test_paths(m.tests)))
        status, seconds, tail = run_tests(copy, baseline)
        if status != 0:
            print(tail)
            sys.exit(f"mutate: the named tests fail on the unchanged tree (status {status}): fix them first")
        print(f"unchanged tree: the named tests pass ({seconds:.0f} s)")
        rows = []
        for mutation in chosen:
            path = copy / mutation.file
            original = path.read_text()
            path.write_text(original.replace(mutation.old, mutation.new, 1))
            try:
                status, seconds, tail = run_tests(copy, mutation.tests)
            finally:
                path.write_text(original)
            # pytest's status 1: a test failed; anything else (an error, a timeout) proves nothing
            rows.append((mutation, "caught" if status == 1 else "NOT caught", seconds, tail))
            print(f"  {mutation.name}: {rows[-1][1]} ({seconds:.0f} s): {tail.splitlines()[0]}", flush=True)

    width = max(len(m.name) for m in chosen)
    print(f"\n{'mutation':<{width}}  {'result':<10}  {'time':>6}  tests")
    for mutation, result, seconds, _ in rows:
        print(f"{mutation.name:<{width}}  {result:<10}  {seconds:5.0f}s  {' '.join(mutation.tests)}")
    missed = [(m, tail) for m, result, _, tail in rows if result != "caught"]
    for mutation, tail in missed:
        print(f"\n{mutation.name} was not caught; the tests ended with:\n{tail}")
    print(f"\n{len(rows) - len(missed)} of {len(rows)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
