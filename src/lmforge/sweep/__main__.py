"""``python -m lmforge.sweep [arguments of sweep.py]``."""

from lmforge.sweep.cli import main

main()
