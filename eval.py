"""Run from the repository root: ``python eval.py ckpt_path=...`` (see README.md)."""

import sys
from pathlib import Path

try:
    from lmforge.cli.eval import main
except ImportError:  # not installed yet: use the sources next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from lmforge.cli.eval import main

if __name__ == "__main__":
    main()
