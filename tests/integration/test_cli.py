"""The training entry points as a user starts them: ``python train.py`` and ``python -m lmforge``."""

from __future__ import annotations

from tests.conftest import TINY, run_cli


def test_train_py_runs_from_the_command_line(tmp_path):
    result = run_cli(
        "train.py", "debug=fdr", *TINY, f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "tokenizer.json").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_module_entry_prints_the_config(tmp_path):
    result = run_cli("-m", "lmforge", "train", "--cfg", "job", "model=bert_small", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "d_model: 512" in result.stdout and "nsp: true" in result.stdout
