"""Run from the repository root: ``python sweep.py hparams_search=lr_warmup n_trials=30 [overrides]``."""

import sys
from pathlib import Path

try:
    from lmforge.cli.sweep import main
except ImportError:  # not installed yet: use the sources next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from lmforge.cli.sweep import main

if __name__ == "__main__":
    main()
