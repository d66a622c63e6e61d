"""Fail fast: a bad setting stops before any data is read, with one line naming the key and the fix."""

from pathlib import Path

import pytest
import torch

from lmforge.cli.train import train
from lmforge.errors import ConfigError

from .test_train import run_cli


def error_of(cfg) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    return caught.value


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ("model.n_heads=5", "model.n_heads", "does not divide model.d_model=32"),
        ("data.max_seq_len=100", "data.max_seq_len", "exceeds the position table"),
        ("data.corpus.paths=[nowhere/*.txt]", "data.corpus.paths", "matches no file"),
        ("optim.lr=-1", "optim.lr", "must be positive"),
        ("ckpt_path=missing.ckpt", "ckpt_path", "is not a file"),
        ("data.tokenizer.path=missing.json", "data.tokenizer.path", "does not exist"),
        ("objective.mlm_probability=0", "objective.mlm_probability", "must be in (0, 1]"),
        (
            "trainer.max_steps=-1",
            "trainer.max_steps",
            "none of trainer.max_steps, trainer.max_epochs, trainer.max_time",
        ),
    ],
)
def test_bad_settings_stop_before_any_data_is_read(make_cfg, override, key, words):
    cfg = make_cfg(override)
    error = error_of(cfg)
    assert error.key == key and words in str(error)
    assert not Path(cfg.data.cache_dir).exists()


def test_a_missing_corpus_path_is_named(make_cfg):
    cfg = make_cfg("data=text_files", tiny=False)
    error = error_of(cfg)
    assert error.key == "data.corpus.paths" and "has no value" in str(error)


def test_an_empty_corpus_file_is_refused(make_cfg, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    error = error_of(make_cfg(f"data.corpus.paths=[{tmp_path}/empty.txt]"))
    assert "is empty" in str(error)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_trainer_without_a_gpu(make_cfg):
    error = error_of(make_cfg("trainer=gpu", "trainer.accelerator=gpu"))
    assert error.key == "trainer.accelerator" and "trainer=cpu" in str(error)


def test_nsp_needs_multi_sentence_documents(make_cfg, tmp_path):
    lines = "\n\n".join(f"Document number {i} has one sentence only" for i in range(40))
    (tmp_path / "short.txt").write_text(lines + "\n")
    error = error_of(make_cfg(f"data.corpus.paths=[{tmp_path}/short.txt]"))
    assert error.key == "objective" and "objective=mlm" in str(error)
    train(make_cfg(f"data.corpus.paths=[{tmp_path}/short.txt]", "objective=mlm", "debug=fdr"))


def test_command_line_error_is_one_line_with_a_nonzero_exit(tmp_path):
    result = run_cli(
        "train.py", "model.n_heads=5", f"hydra.run.dir={tmp_path}", f"paths.data_dir={tmp_path}/d"
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: model.n_heads=5 does not divide model.d_model=128: set model.n_heads to one of "
        "1, 2, 4, 8, 16, 32, 64 (or change model.d_model)"
    ]
    assert not (tmp_path / "d").exists()


def test_a_corpus_without_text_is_refused_and_nothing_is_cached(make_cfg, tmp_path):
    (tmp_path / "blank.jsonl").write_text('{"text": ""}\n{"text": "   "}\n')
    cfg = make_cfg(f"data.corpus.paths=[{tmp_path}/blank.jsonl]")
    error = error_of(cfg)
    assert error.key == "data.corpus" and "holds no text" in str(error)
    assert not list(Path(cfg.data.cache_dir).glob("*/wordpiece-*"))
