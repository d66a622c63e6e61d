"""``lmforge consolidate <folder> --out FILE``: one file from an FSDP checkpoint folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lmforge.cli.errors import exit_on_config_error
from lmforge.io.consolidate import FORMATS, consolidate


def parser(prog: str = "lmforge consolidate") -> argparse.ArgumentParser:
    """The command's arguments (the docs check their commands against it)."""
    arguments = argparse.ArgumentParser(
        prog=prog, description="Gather the shards of a distributed (strategy=fsdp) checkpoint into one file."
    )
    arguments.add_argument(
        "folder", help="a distributed checkpoint folder (…/checkpoints/last.ckpt under strategy=fsdp)"
    )
    arguments.add_argument(
        "--out",
        required=True,
        help=f"the file to write: {' or '.join(FORMATS)} (model.safetensors, model.ckpt)",
    )
    return arguments


def main(argv: Sequence[str] | None = None, prog: str = "lmforge consolidate") -> None:
    args = parser(prog).parse_args(argv)
    print(f"wrote {exit_on_config_error(lambda: consolidate(args.folder, args.out))}")


if __name__ == "__main__":
    main()
