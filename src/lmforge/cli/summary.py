"""``lmforge summary <multirun folder>``: write a multirun's summary table and plot again."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from lmforge.run.summary import summarize


def parser(prog: str = "lmforge summary") -> argparse.ArgumentParser:
    """The command's arguments (the docs check their commands against it)."""
    arguments = argparse.ArgumentParser(
        prog=prog, description="Write summary.csv/.md/.png of a multirun folder."
    )
    arguments.add_argument("sweep_dir", help="the multirun folder (logs/<task_name>/multiruns/<date>_<time>)")
    return arguments


def main(argv: Sequence[str] | None = None, prog: str = "lmforge summary") -> None:
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not summarize(args.sweep_dir):
        raise SystemExit(f"error: no result.json under {args.sweep_dir}: is it a multirun folder?")


if __name__ == "__main__":
    main()
