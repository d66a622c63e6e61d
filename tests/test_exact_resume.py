"""Exact resume: a run preempted mid-epoch and resumed from its ``last.ckpt`` trains on the same batches
with the same random numbers as the run that was never stopped, so its losses are equal, step by step."""

from __future__ import annotations

import csv
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lmforge.cli.train import train
from lmforge.data.packing import BlockSampler
from lmforge.data.resumable import ResumableLoader
from lmforge.data.sampler import LengthGroupedSampler, ShardedSampler, ShuffledSampler

from .conftest import TINY, TOPICS_RUN, compose_config, run_cli, run_if

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


class PreemptAt(Callback):
    """Send this process SIGTERM after step ``step - 1``: the preemption callback saves ``last.ckpt``
    at the end of step ``step`` and the run stops, as a preempted job would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGTERM)


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


# --- the loader's place, on several processes (a fake rank and world size) ---------------------

SAMPLERS = {
    "length_grouped": lambda rank, world: LengthGroupedSampler(
        90, 3, length_of=lambda keys: keys % 7, seed=5, group_batches=2, rank=rank, world_size=world
    ),
    "block": lambda rank, world: BlockSampler(600, 8, shuffle=True, seed=5, rank=rank, world_size=world),
    "shuffled": lambda rank, world: ShuffledSampler(90, seed=5, rank=rank, world_size=world),
}


def loader(sampler: ShardedSampler, epoch: int) -> ResumableLoader:
    sampler.set_epoch(epoch)  # as Lightning does before each epoch
    return ResumableLoader(list(range(10_000)), sampler, seed=0, batch_size=3, drop_last=True)


def keys(batches) -> list[int]:
    return [int(key) for batch in batches for key in batch]


@pytest.mark.parametrize("make", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_every_rank_of_a_resumed_run_goes_on_where_it_stopped(make):
    world, done = 2, 4
    for rank in range(world):
        whole = list(loader(make(rank, world), epoch=2))
        stopped = loader(make(rank, world), epoch=2)
        batches = iter(stopped)
        first = [next(batches) for _ in range(done)]
        state = stopped.state_dict()
        assert state == {"epoch": 2, "examples": done * 3 * world, "processes": world}

        resumed = loader(make(rank, world), epoch=0)
        resumed.load_state_dict(state)
        resumed.sampler.set_epoch(2)
        rest = list(resumed)
        assert keys(first + rest) == keys(whole)
        assert len(resumed) == len(whole)  # Lightning counts the epoch's batches from its start
        assert resumed.state_dict()["examples"] == len(whole) * 3 * world
        assert keys(resumed) == keys(whole)  # the next pass of the same epoch starts at its head


def test_a_place_in_an_epoch_that_had_ended_does_not_skip_into_the_next():
    ended = loader(SAMPLERS["block"](0, 1), epoch=1)
    list(ended)
    resumed = loader(SAMPLERS["block"](0, 1), epoch=1)
    resumed.load_state_dict(ended.state_dict())
    resumed.sampler.set_epoch(2)
    assert keys(resumed) == keys(loader(SAMPLERS["block"](0, 1), epoch=2))


def test_another_number_of_processes_goes_on_at_the_same_example_and_warns():
    on_two = [loader(SAMPLERS["block"](rank, 2), epoch=1) for rank in range(2)]
    for part in on_two:
        batches = iter(part)
        for _ in range(5):
            next(batches)
    alone = loader(SAMPLERS["block"](0, 1), epoch=1)
    with pytest.warns(UserWarning, match="written by 2 process"):
        alone.load_state_dict(on_two[0].state_dict())
    order = keys(loader(SAMPLERS["block"](0, 1), epoch=1))  # epoch 1's global order, whole batches
    assert keys(alone) == order[5 * 3 * 2 :]


# --- two processes, end to end -------------------------------------------------------------------


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
    preempt = ["+callbacks.preempt._target_=tests.test_exact_resume.PreemptAt", "+callbacks.preempt.step=4"]
    first = cli_losses(tmp_path, "preempted", *preempt)
    assert sorted(first) == [0, 1, 2, 3]
    assert cli_losses(tmp_path, "preempted") == whole
