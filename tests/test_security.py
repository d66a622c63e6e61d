"""Checkpoints are read as tensors and plain data only: a pickled object cannot run code on load."""

import os
from pathlib import Path

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.init_from import pretrained_tokenizer


class RunsCode:
    """Unpickling this calls ``os.system``: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": RunsCode(marker)}, path)
    return path, marker


def test_a_checkpoint_that_would_run_code_is_refused(malicious):
    path, marker = malicious
    with pytest.raises(ConfigError, match="cannot run code") as refused:
        read_checkpoint(path)
    assert "posix.system" in str(refused.value) and not marker.exists()


def test_init_from_a_checkpoint_that_would_run_code_is_refused(malicious):
    path, marker = malicious
    with pytest.raises(ConfigError, match="cannot run code") as refused:
        pretrained_tokenizer(str(path))
    assert refused.value.key == "model.init_from" and not marker.exists()
