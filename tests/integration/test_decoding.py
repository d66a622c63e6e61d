"""Decoding from checkpoints of short real runs: a decoder continues a prompt (cached, batched, sampled),
``generate.py`` from the command line, a BERT checkpoint fills masks."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lmforge.cli.generate import run as generate_run
from lmforge.cli.train import train
from lmforge.errors import ConfigError
from tests.conftest import CONF, TINY, compose_config, run_cli

RUN = [
    "trainer.max_steps=30",
    "trainer.val_check_interval=15",
    "optim.lr=1e-2",
    "trainer.log_every_n_steps=1",
]


DECODER = ["data.max_seq_len=32", "data.tokenizer.vocab_size=400"]


def generate_cfg(ckpt: Path, **values):
    cfg = OmegaConf.load(CONF / "generate.yaml")
    cfg.pop("defaults")
    cfg.pop("hydra")
    cfg.ckpt_path = str(ckpt)
    for key, value in values.items():
        cfg[key] = value
    return cfg


@pytest.fixture(scope="module", params=["gpt_tiny", "llama_tiny"])
def decoder_run(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    cfg = compose_config([f"model={request.param}", *TINY, *DECODER, *RUN], tmp)
    train(cfg)
    return cfg, Path(cfg.paths.output_dir)


def test_generate_continues_a_prompt_from_a_decoder_checkpoint(decoder_run):
    _, run_dir = decoder_run
    last = run_dir / "checkpoints" / "last.ckpt"
    greedy = generate_run(generate_cfg(last, prompt="The workshop", max_new_tokens=12, stop_at_eot=False))
    assert len(greedy) == 1 and greedy[0].startswith("The workshop") and len(greedy[0]) > len("The workshop")
    uncached = generate_run(
        generate_cfg(last, prompt="The workshop", max_new_tokens=12, stop_at_eot=False, use_cache=False)
    )
    assert uncached == greedy
    batch = generate_run(
        generate_cfg(last, prompts=["The workshop", "A"], max_new_tokens=12, stop_at_eot=False)
    )
    assert batch[0] == greedy[0]
    sampled = lambda seed: generate_run(  # noqa: E731
        generate_cfg(last, prompt="The", sample=True, top_k=20, top_p=0.9, temperature=1.2, seed=seed)
    )
    assert sampled(1) == sampled(1)


def test_generate_py_runs_from_the_command_line(decoder_run):
    _, run_dir = decoder_run
    result = run_cli(
        "generate.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "prompt=The", "max_new_tokens=5"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("The")


def test_generate_fills_masks_with_a_bert_checkpoint(tmp_path):
    cfg = compose_config([*TINY, *RUN, "trainer.max_steps=5"], tmp_path)
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    blocks = generate_run(generate_cfg(last, prompt="The [MASK] has a [MASK] bench.", fill_top_k=3))
    lines = blocks[0].splitlines()
    assert lines[0] == "The [MASK] has a [MASK] bench."
    assert lines[1].startswith("  [MASK] 1: ") and lines[2].startswith("  [MASK] 2: ")
    probabilities = [float(part.split("(")[1].rstrip(")")) for part in lines[1].split(": ", 1)[1].split(", ")]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    with pytest.raises(ConfigError, match="no \\[MASK\\] token"):
        generate_run(generate_cfg(last, prompt="Nothing to fill."))


def test_generate_refuses_a_missing_checkpoint_and_a_missing_prompt(tmp_path):
    result = run_cli("generate.py", f"ckpt_path={tmp_path / 'none.ckpt'}", "prompt=x")
    assert result.returncode == 2 and "is not a file" in result.stderr
    with pytest.raises(ConfigError, match="no prompt"):
        generate_run(generate_cfg(tmp_path / "none.ckpt"))
