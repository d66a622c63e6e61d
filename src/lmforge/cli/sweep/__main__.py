"""``python -m lmforge.cli.sweep [arguments]``: the same as ``lmforge sweep`` and ``python sweep.py``."""

from lmforge.cli.sweep.cli import main

main()
