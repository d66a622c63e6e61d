"""``lmforge <subcommand> [arguments]``: one command for every tool of the project.

Hydra subcommands (train, eval, generate, prepare, sweep) take ``key=value`` overrides exactly as the
root scripts do (``python train.py ...`` is ``lmforge train ...``); the others (merge, export,
consolidate, plot, summary) take ordinary options. ``lmforge <subcommand> --help`` explains each.
A subcommand's module is imported only when it runs, so ``lmforge --help`` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module with main(), what it does); Hydra apps read sys.argv, the others get argv
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lmforge.cli.train", "pretrain or fine-tune a model (Hydra overrides: model=... data=...)"),
    "eval": ("lmforge.cli.eval", "score a checkpoint on the test or validation split of its data"),
    "generate": ("lmforge.cli.generate", "continue prompts (decoders) or fill [MASK] (encoders)"),
    "prepare": ("lmforge.cli.prepare", "train the tokenizer and tokenise a corpus ahead of training"),
    "sweep": ("lmforge.cli.sweep", "run or continue an Optuna study over train's config"),
    "merge": ("lmforge.cli.merge", "fold a LoRA or IA3 checkpoint into a plain model"),
    "export": ("lmforge.cli.export", "write a checkpoint as a Hugging Face model folder"),
    "consolidate": ("lmforge.cli.consolidate", "gather an FSDP checkpoint folder into one file"),
    "plot": ("lmforge.cli.plot", "draw training curves of runs from their CSV logs"),
    "summary": ("lmforge.cli.summary", "write a multirun's summary table and plot again"),
}
HYDRA_COMMANDS = ("train", "eval", "generate", "prepare", "sweep")


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: lmforge <subcommand> [arguments]",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()),
        "",
        "lmforge <subcommand> --help explains one; train, eval, generate, prepare and sweep take Hydra",
        "overrides (lmforge train model=gpt_tiny trainer.max_steps=100), the others options.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(
            f"error: {name} is not a subcommand of lmforge; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[name][0])
    if name in HYDRA_COMMANDS:  # Hydra parses sys.argv itself
        sys.argv = [f"lmforge {name}", *rest]
        module.main()
    else:
        module.main(rest, prog=f"lmforge {name}")


if __name__ == "__main__":
    main()
