"""The prepare step: token shards written once and reused, in process and from the command line."""

from __future__ import annotations

from lmforge.cli.prepare import prepare
from tests.conftest import CONF, run_cli

DECODER = ["data.max_seq_len=32", "data.tokenizer.vocab_size=400"]


def test_prepare_writes_shards_once_and_then_reuses_them(make_cfg, capsys):
    cfg = make_cfg("model=gpt_tiny", *DECODER)
    first = prepare(cfg)
    assert (first / "meta.json").is_file() and list(first.glob("tokens-*.npy"))
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert prepare(cfg) == first and (first / "meta.json").stat().st_mtime_ns == stamp
    out = capsys.readouterr().out
    assert "bpe vocabulary of 400" in out and "shard(s)" in out


def test_lmforge_prepare_runs_from_the_command_line(tmp_path):
    result = run_cli(
        "-m",
        "lmforge",
        "prepare",
        "model=gpt_tiny",
        "data=text_files",
        f"data.corpus.paths=[{CONF.parent / 'tests/fixtures/corpus/workshop.txt'}]",
        "data.tokenizer.vocab_size=300",
        f"paths.data_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert "shards:" in result.stdout and str(tmp_path) in result.stdout
