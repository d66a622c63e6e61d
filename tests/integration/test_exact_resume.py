"""Exact resume: a run preempted mid-epoch and resumed from its ``last.ckpt`` trains on the same batches
with the same random numbers as the run that was never stopped, so its losses are equal, step by step."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lmforge.cli.train import train
from tests.conftest import TINY, TOPICS_RUN, compose_config, run_cli, run_if
from tests.support.probes import PreemptAt

# Per epoch: BERT 3 batches, GPT 8, the topics classifier 3 (the fixture sets at these settings).
# Dropout is on (0.1, the presets' default), so the random states matter.
BERT = TINY


GPT = ["model=gpt_tiny", *TINY, "data.max_seq_len=32"]


CLASSIFY = ["model=bert_tiny", "model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_layers=1"]
CLASSIFY += [*TOPICS_RUN, "data.tokenizer.vocab_size=300"]


class LossRecorder(Callback):
    """The training loss of every batch, by its number counted from the start of the run."""

    def __init__(self) -> None:
        self.losses: dict[int, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.fit_loop.total_batch_idx] = outputs["loss"].detach().clone()


def losses_of(overrides: list[str], folder: Path, *callbacks: Callback) -> dict[int, torch.Tensor]:
    recorder = LossRecorder()
    train(compose_config(overrides, folder), extra_callbacks=[recorder, *callbacks])
    return recorder.losses


def assert_resume_is_exact(overrides: list[str], tmp_path: Path, stop: int, steps: int) -> None:
    """Train ``steps`` steps at once; then preempt the same run at ``stop`` and resume it with
    ``resume=auto``: the resumed steps' losses equal the uninterrupted run's, bit for bit."""
    run = [*overrides, f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1"]
    whole = losses_of(run, tmp_path / "whole")
    # the same tokenizer: training one again may break ties between pieces in another order
    shutil.copytree(tmp_path / "whole" / "data", tmp_path / "preempted" / "data")
    first = losses_of([*run, "resume=auto"], tmp_path / "preempted", PreemptAt(stop))
    rest = losses_of([*run, "resume=auto"], tmp_path / "preempted")
    assert max(first) < min(rest), "the resumed run trained some batches again"
    assert sorted([*first, *rest]) == sorted(whole), "the two parts together are not the whole run"
    for batch in sorted(whole):
        resumed = first.get(batch, rest.get(batch))
        assert torch.equal(resumed, whole[batch]), (
            f"batch {batch}: loss {resumed.item():.8f} after a stop at step {stop}, "
            f"{whole[batch].item():.8f} without a stop"
        )


@pytest.mark.parametrize("stop", [4, 3], ids=["mid-epoch", "at-the-end-of-an-epoch"])
def test_bert_mlm_nsp_resumes_exactly(tmp_path, stop):
    assert_resume_is_exact([*BERT, "trainer.val_check_interval=2"], tmp_path, stop=stop, steps=8)


def test_bert_resumes_exactly_with_data_loading_workers(tmp_path):
    overrides = [*BERT, "trainer.val_check_interval=2", "data.num_workers=2"]
    assert_resume_is_exact(overrides, tmp_path, stop=4, steps=7)


def test_a_signal_in_the_middle_of_an_accumulated_step_saves_at_its_end(tmp_path):
    # 2 batches a step, 3 an epoch (its last batch steps alone): the signal comes after batch 2 (step
    # 2), batch 3 only accumulates, so the checkpoint waits for batch 4 (step 3, mid-epoch)
    overrides = [*BERT, "trainer.accumulate_grad_batches=2", "trainer.val_check_interval=2"]
    assert_resume_is_exact(overrides, tmp_path, stop=3, steps=5)


def test_gpt_causal_lm_resumes_exactly(tmp_path):
    assert_resume_is_exact([*GPT, "trainer.val_check_interval=3"], tmp_path, stop=5, steps=11)


def test_classification_resumes_exactly(tmp_path):
    assert_resume_is_exact([*CLASSIFY, "trainer.val_check_interval=3"], tmp_path, stop=4, steps=8)


def cli_losses(tmp_path: Path, name: str, *overrides: str) -> dict[int, str]:
    """``python train.py`` on 2 gloo processes in ``tmp_path/name``: rank 0's training loss by step,
    from every ``metrics*.csv`` of the run (a resumed run keeps the earlier part's file)."""
    run_dir = tmp_path / name
    result = run_cli(
        "train.py",
        *BERT,
        "strategy=ddp_cpu",
        "data.batch_size=4",  # 8 an optimiser step, as in one process: 3 batches an epoch
        "trainer.max_steps=7",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "resume=auto",
        *overrides,
        f"paths.output_dir={run_dir}",
        f"paths.data_dir={tmp_path / 'data'}",  # one tokenizer for both runs
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    losses = {}
    for path in sorted((run_dir / "csv").glob("metrics*.csv")):
        with open(path) as handle:
            losses.update(
                {int(r["step"]): r["train/loss"] for r in csv.DictReader(handle) if r["train/loss"]}
            )
    return losses


@pytest.mark.slow
@run_if(multiprocess=True)
def test_two_processes_resume_exactly(tmp_path):
    whole = cli_losses(tmp_path, "whole")
    preempt = ["+callbacks.preempt._target_=tests.support.probes.PreemptAt", "+callbacks.preempt.step=4"]
    first = cli_losses(tmp_path, "preempted", *preempt)
    assert sorted(first) == [0, 1, 2, 3]
    assert cli_losses(tmp_path, "preempted") == whole
