"""W&B: offline without an API key, a run folder holding the config, sizes, git state, tokenizer and
metrics, and no secret in what is saved."""

from pathlib import Path

from lmforge.cli.train import train
from lmforge.run.tracking import has_wandb_key, without_secrets


def test_secrets_are_dropped_at_any_depth():
    config = {"a": 1, "api_key": "k", "nested": {"hf_token": "t", "keep": [{"password": "p", "b": 2}]}}
    assert without_secrets(config) == {"a": 1, "nested": {"keep": [{"b": 2}]}}
    settings = {
        "tokenizer": {"vocab_size": 8},
        "max_new_tokens": 4,
        "shard_tokens": 9,
        "token": "t",
        "SECRET": "s",
    }
    assert without_secrets(settings) == {
        "tokenizer": {"vocab_size": 8},
        "max_new_tokens": 4,
        "shard_tokens": 9,
    }


def test_wandb_goes_offline_without_a_key_and_records_the_run(make_cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert not has_wandb_key()
    cfg = make_cfg(
        "logger=wandb",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "+service_api_key=hunter2",  # a secret that must not be saved
    )
    with caplog.at_level("INFO", logger="lmforge"):
        train(cfg)
    assert "logging offline" in caplog.text
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # wandb 0.31 keeps an offline run's config and history in one protobuf log (run-*.wandb), read
    # by `wandb sync`; its strings are stored as they are, so what was recorded can be looked up.
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for expected in (
        b"d_model",
        b"parameters",
        b"trainable",
        b"commit",
        b"dirty",
        b"train/loss",
        b"val/loss",
    ):
        assert expected in record, expected
    assert b"hunter2" not in record and b"service_api_key" not in record
    assert (runs[0] / "files" / "tokenizer.json").is_file()
