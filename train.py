"""Run from the repository root: ``python train.py [hydra overrides]`` (see README.md)."""

import sys
from pathlib import Path

try:
    from lmforge.cli.train import main
except ImportError:  # not installed yet: use the sources next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from lmforge.cli.train import main

if __name__ == "__main__":
    main()
