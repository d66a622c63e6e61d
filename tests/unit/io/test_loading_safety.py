"""Checkpoints are read as tensors and plain data only: a pickled object cannot run code on load."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.hf import check_folder, load_backbone
from lmforge.io.init_from import pretrained_tokenizer
from tests.support.unsafe import RunsCode, unsafe_checkpoint


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = unsafe_checkpoint(tmp_path / "evil.ckpt", tmp_path / "code-ran")
    with pytest.raises(ConfigError, match="cannot run code") as refused:
        read_checkpoint(path)
    assert "posix.system" in str(refused.value) and not (tmp_path / "code-ran").exists()


def test_init_from_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = unsafe_checkpoint(tmp_path / "evil.ckpt", tmp_path / "code-ran")
    with pytest.raises(ConfigError, match="cannot run code") as refused:
        pretrained_tokenizer(str(path))
    assert refused.value.key == "model.init_from" and not (tmp_path / "code-ran").exists()


def test_a_pytorch_model_bin_that_would_run_code_is_refused_unrun(tmp_path):
    hf = pytest.importorskip("tests.support.hf")  # the reference folder needs transformers
    folder = hf.as_pytorch_bin(hf.reference_bert(tmp_path / "hf"))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**state, "payload": RunsCode(marker)}, folder / "pytorch_model.bin")
    for read in (check_folder, load_backbone):
        with pytest.raises(ConfigError, match=r"pytorch_model\.bin: .*GLOBAL posix\.system.*cannot run code"):
            read(f"hf:{folder}")
    assert not marker.exists()
