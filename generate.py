"""Run from the repository root: ``python generate.py ckpt_path=... prompt="..."`` (see README.md)."""

import sys
from pathlib import Path

try:
    from lmforge.cli.generate import main
except ImportError:  # not installed yet: use the sources next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from lmforge.cli.generate import main

if __name__ == "__main__":
    main()
