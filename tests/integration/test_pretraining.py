"""Short real pretraining runs: BERT (MLM + NSP) and the decoders learn, log their figures, checkpoint
and resume.

The BERT runs read tests/fixtures/corpus/subjects.txt: each of its 48 documents repeats one subject word
in six sentences, so a masked subject is guessed from the rest of its document (context), and a true
continuation shares its subject with segment A (next-sentence prediction).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lmforge.cli.train import train
from lmforge.data.tokenized import TokenizedCorpus
from lmforge.models import build_backbone
from lmforge.tasks import BertPretraining
from tests.conftest import CORPUS, TINY, compose_config, metrics

RUN = [
    "trainer.max_steps=30",
    "trainer.val_check_interval=15",
    "optim.lr=1e-2",
    "trainer.log_every_n_steps=1",
]
SUBJECTS = [f"data.corpus.paths=[{CORPUS / 'subjects.txt'}]", "data.val_draws=4"]
BERT_RUN = [*TINY, *SUBJECTS, *RUN, "trainer.max_steps=60", "trainer.val_check_interval=30"]


DECODER = ["data.max_seq_len=32", "data.tokenizer.vocab_size=400"]


def test_fast_dev_run(make_cfg):
    cfg = make_cfg("debug=fdr")
    assert train(cfg) is not None
    assert (Path(cfg.paths.output_dir) / "tokenizer.json").is_file()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("short")
    cfg = compose_config(BERT_RUN, tmp)
    train(cfg)
    return cfg, Path(cfg.paths.output_dir)


def unigram_entropy(data_dir: Path) -> float:
    """The masked-LM loss, in nats, of a model that knows how often each token occurs and nothing of
    its context: the entropy of the corpus's token counts (a model fitted on the training split alone
    does no better on the held-out one)."""
    (meta,) = sorted(data_dir.rglob("tokens-*/meta.json"))
    corpus = TokenizedCorpus.load(meta.parent)
    counts = np.bincount(corpus.tokens_between(0, corpus.n_tokens).astype(np.int64))
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum())


def test_a_short_run_learns_more_than_how_often_each_token_occurs(short_run):
    cfg, run_dir = short_run
    losses = [row["train/loss"] for row in metrics(run_dir) if "train/loss" in row]
    assert len(losses) == 60
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, f"training loss went from {first:.2f} to {last:.2f}"
    val = [row for row in metrics(run_dir) if "val/loss" in row]
    assert len(val) == 2 and {"val/mlm_acc", "val/nsp_acc", "val/perplexity"} <= set(val[-1])
    unigram = unigram_entropy(Path(cfg.paths.data_dir))
    assert val[-1]["val/mlm_loss"] < unigram - 0.5, (val[-1]["val/mlm_loss"], unigram)  # 1.6 against 2.65


@pytest.mark.slow
def test_a_longer_run_learns_next_sentence_prediction(make_cfg):
    """NSP takes a few hundred steps to start (about 20 s): far above chance (0.5) after 600."""
    wider = [
        "model.d_model=64",
        "model.d_ff=128",
        "model.n_layers=2",
        "model.dropout=0",
        "model.attention_dropout=0",
    ]
    settings = [
        "data.batch_size=32",
        "optim.lr=3e-3",
        "trainer.max_steps=600",
        "trainer.val_check_interval=600",
    ]
    cfg = make_cfg(*SUBJECTS, *wider, *settings)
    train(cfg)
    val = [row for row in metrics(Path(cfg.paths.output_dir)) if "val/nsp_acc" in row]
    assert val[-1]["val/nsp_acc"] >= 0.8, val[-1]  # 0.94 measured


def test_throughput_flops_and_peak_memory_are_logged(short_run):
    _, run_dir = short_run
    rows = metrics(run_dir)
    rates = [row for row in rows if "train/device/items_per_sec" in row]
    assert rates, "ThroughputMonitor logged nothing"
    last = rates[-1]
    for key in ("items_per_sec", "samples_per_sec", "batches_per_sec", "flops_per_sec"):
        assert last[f"train/device/{key}"] > 0
    # FLOP/s over samples/s is the FLOPs of one sample: flops_per_token x its padded width (8 to 48)
    hparams = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    backbone = build_backbone(instantiate(hparams["model"]))
    flops_per_sample = last["train/device/flops_per_sec"] / last["train/device/samples_per_sec"]
    lowest, highest = (backbone.flops_per_token(width) * width for width in (8, 48))
    assert lowest <= flops_per_sample * 1.001 and flops_per_sample <= highest * 1.001
    memory = [row["train/peak_memory_gb"] for row in rows if "train/peak_memory_gb" in row]
    assert memory and 0.05 < memory[-1] < 24


def test_checkpoints_hold_the_step_the_hyperparameters_and_the_tokenizer(short_run):
    _, run_dir = short_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 60
    assert checkpoint["hyper_parameters"]["model"]["vocab_size"] <= 400
    assert "tokenizer" in checkpoint["MaskedLMDataModule"]
    assert len(list((run_dir / "checkpoints").glob("step*-val_loss*.ckpt"))) == 1


def test_resume_from_last_continues_the_step_count(short_run, tmp_path):
    _, run_dir = short_run
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = compose_config([*BERT_RUN, "trainer.max_steps=70", f"ckpt_path={last}"], tmp_path)
    train(resumed)
    steps = [int(row["step"]) for row in metrics(Path(resumed.paths.output_dir)) if "train/loss" in row]
    assert steps[0] == 60 and steps[-1] == 69 and len(steps) == 10
    final = torch.load(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == 70


def test_last_ckpt_holds_the_last_step_even_when_validation_got_worse(make_cfg, monkeypatch):
    """Lightning 2.6 refreshes ``save_last`` only when a best checkpoint is saved; ours does not wait."""

    def worse_every_time(self):
        self.log("val/loss", float(self.global_step))  # rises: the first validation stays the best

    monkeypatch.setattr(BertPretraining, "on_validation_epoch_end", worse_every_time)
    cfg = make_cfg("trainer.max_steps=6", "trainer.val_check_interval=3")
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 6
    assert [p.name for p in folder.glob("step*.ckpt")] == ["step000003-val_loss3.0000.ckpt"]


def test_bert_small_runs_twenty_steps(make_cfg):
    cfg = make_cfg("model=bert_small", "model.max_seq_len=512", "trainer.max_steps=20", "data.batch_size=4")
    train(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


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
