"""The unit layer's rule, enforced: no training loop and no subprocess. A test that needs either belongs
in tests/integration (docs/testing.md)."""

from __future__ import annotations

import subprocess

import lightning.pytorch as pl
import pytest


def refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"a unit test started {what}: move it to tests/integration")

    return refused


@pytest.fixture(autouse=True)
def no_training_loop_and_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    for loop in ("fit", "validate", "test", "predict"):
        monkeypatch.setattr(pl.Trainer, loop, refuse(f"Trainer.{loop}"))
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("a subprocess"))
