"""``lmforge export <ckpt> --out DIR``: one of our checkpoints as a Hugging Face model folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lmforge.cli.errors import exit_on_config_error
from lmforge.io.hf.export import export_task
from lmforge.run.load import load_task


def export(ckpt_path: str, out: Path) -> Path:
    """Write ``ckpt_path``'s model to ``out`` in Hugging Face's layout; returns ``out``."""
    task, tokenizer, _ = load_task(ckpt_path)
    for part in export_task(task, tokenizer, out):
        print(f"left out: {part}")
    return out


def parser(prog: str = "lmforge export") -> argparse.ArgumentParser:
    """The command's arguments (the docs check their commands against it)."""
    arguments = argparse.ArgumentParser(
        prog=prog, description="Export one of our checkpoints as a Hugging Face model folder."
    )
    arguments.add_argument(
        "ckpt_path", help="a checkpoint written by train.py, or merged.ckpt from lmforge merge"
    )
    arguments.add_argument("--out", type=Path, required=True, help="folder to write (created if needed)")
    return arguments


def main(argv: Sequence[str] | None = None, prog: str = "lmforge export") -> None:
    args = parser(prog).parse_args(argv)
    written = exit_on_config_error(lambda: export(args.ckpt_path, args.out))
    print(f"wrote {written}/config.json, model.safetensors and tokenizer.json")


if __name__ == "__main__":
    main()
