"""The GPU check's modules (bench/gpu_check*.py), imported as its scripts import each other."""

import sys

from tests.conftest import ROOT

sys.path.append(str(ROOT / "bench"))
import gpu_check
import gpu_check_steps as steps
from gpu_check_runs import Outcome, Run, compare_losses

STEP_NAMES = [step.name for step in steps.STEPS]

__all__ = ["STEP_NAMES", "Outcome", "Run", "compare_losses", "gpu_check", "steps"]
