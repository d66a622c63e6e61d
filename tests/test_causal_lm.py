"""Short real runs of the decoders: GPT and LLaMA learn on packed blocks, resume, and their checkpoints
generate; a BERT checkpoint fills masks; the prepare step; mismatched model and objective."""

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lmforge.cli.generate import run as generate_run
from lmforge.cli.prepare import prepare
from lmforge.cli.train import train
from lmforge.errors import ConfigError

from .conftest import CONF, TINY, compose_config
from .test_train import metrics, run_cli

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


def test_a_decoder_learns_on_packed_blocks(decoder_run):
    cfg, run_dir = decoder_run
    assert cfg.objective.kind == "clm"
    rows = metrics(run_dir)
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, f"training loss went from {first:.2f} to {last:.2f}"
    val = [row for row in rows if "val/loss" in row]
    vocab = len(json.loads((run_dir / "tokenizer.json").read_text())["model"]["vocab"])
    assert len(val) == 2 and val[-1]["val/loss"] < math.log(vocab) - 0.5  # well below a uniform guess
    assert "val/perplexity" in val[-1]
    tokens = [row["train/tokens"] for row in rows if "train/tokens" in row]
    assert tokens[-1] == 30 * 8 * 32  # steps x batch x block


def test_a_decoder_checkpoint_resumes_and_keeps_counting_tokens(decoder_run, tmp_path):
    cfg, run_dir = decoder_run
    model = "llama_tiny" if cfg.model._target_.endswith("LlamaConfig") else "gpt_tiny"
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["hyper_parameters"]["objective"]["kind"] == "clm"
    assert "<|endoftext|>" in checkpoint["CausalLMDataModule"]["tokenizer"]
    resumed = compose_config(
        [f"model={model}", *TINY, *DECODER, *RUN, "trainer.max_steps=35", f"ckpt_path={last}"], tmp_path
    )
    train(resumed)
    rows = metrics(Path(resumed.paths.output_dir))
    tokens = [row["train/tokens"] for row in rows if "train/tokens" in row]
    assert tokens[-1] == 35 * 8 * 32


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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=gpt_tiny", "objective=mlm"], "causal decoder and cannot train a masked-LM objective"),
        (["model=bert_tiny", "objective=clm"], "bidirectional encoder and cannot train causal LM"),
    ],
)
def test_a_model_and_objective_that_do_not_fit_are_refused(overrides, message, make_cfg):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides))


@pytest.mark.parametrize("model", ["gpt_tiny", "bert_tiny"])
def test_a_training_split_smaller_than_one_batch_is_refused(model, make_cfg):
    with pytest.raises(ConfigError, match=r"fewer than data\.batch_size=512: lower data\.batch_size"):
        train(make_cfg(f"model={model}", *DECODER, "data.batch_size=512"))


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
