"""Multi-process runs (``python train.py`` as a subprocess: Lightning's DDP re-runs the command for rank
1, so it cannot run inside pytest): ddp_cpu and FSDP2 on two CPU processes train as one process would,
their checkpoints consolidate and resume; DeepSpeed ZeRO on GPUs where there are some."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lmforge.io.checkpoints import is_distributed_checkpoint, read_checkpoint
from lmforge.run.load import load_task
from lmforge.tasks import CausalLMPretraining
from tests.conftest import SHORT, TINY, run_cli, run_if

# Tiny on the fixture corpus, no dropout, no validation: runs whose parameters can be compared.
EXACT = [
    *(o for o in TINY if not o.startswith("data.batch_size")),
    "model=gpt_tiny",
    "model.dropout=0",
    "model.attention_dropout=0",
    "data.max_seq_len=16",
    "trainer.max_steps=6",
    "trainer.val_check_interval=3",
    "trainer.log_every_n_steps=1",
    "hydra.job.chdir=false",
]


def train_cli(tmp_path: Path, name: str, *overrides: str) -> Path:
    """``python train.py`` with ``overrides`` writing to ``tmp_path/name``; returns the run folder."""
    run_dir = tmp_path / name
    result = run_cli(
        "train.py",
        *overrides,
        f"paths.output_dir={run_dir}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={run_dir}",
        "+callbacks.probe._target_=tests.support.probes.ParameterDump",
        f"+callbacks.probe.folder={run_dir / 'params'}",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def built_on(run_dir: Path) -> list[list[str]]:
    """The devices each rank's task was built on (``ParameterDump``), ranks 0 and 1."""
    return [json.loads((run_dir / "params" / f"rank{r}-built-on.json").read_text()) for r in (0, 1)]


def train_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: one process, batches of 8."""
    return train_cli(tmp_path_factory.mktemp("one"), "one", *EXACT, "data.batch_size=8")


def assert_trained_like(reference: Path, run_dir: Path) -> None:
    """Both ranks of ``run_dir`` hold the same parameters, within 1e-5 of those of ``reference``."""
    single = torch.load(reference / "params" / "rank0.pt")
    ranks = [torch.load(run_dir / "params" / f"rank{r}.pt") for r in (0, 1)]
    assert single.keys() == ranks[0].keys() == ranks[1].keys()
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between the ranks"
        torch.testing.assert_close(
            ranks[0][name], value, atol=1e-5, rtol=0, msg=f"{name} differs from one process"
        )
    losses = train_losses(reference)  # (a 2-process run logs rank 0's half of the batch: not comparable)
    assert len(losses) == len(train_losses(run_dir)) == 6 and losses[-1] < losses[0]


@run_if(multiprocess=True)
def test_ddp_cpu_trains_like_one_process_on_the_same_global_batch(one_process, tmp_path):
    # Each rank takes every 2nd block of the same seeded order (ShardedSampler), so the two batches of
    # 4 of a step are the batch of 8 one process draws; packed blocks have equal token counts, so
    # DDP's mean of the two ranks' mean losses is that process's loss, and the gradients agree.
    run_dir = train_cli(tmp_path, "ddp", *EXACT, "data.batch_size=4", "strategy=ddp_cpu")
    assert_trained_like(one_process, run_dir)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


FSDP = ["strategy=fsdp", "trainer.devices=2", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> Path:
    """FSDP2 on two CPU processes, batches of 4 each: the same global batches as ``one_process``."""
    return train_cli(tmp_path_factory.mktemp("fsdp"), "fsdp", *EXACT, "data.batch_size=4", *FSDP)


@run_if(multiprocess=True)
def test_fsdp_on_two_cpu_processes_trains_like_one_process(one_process, fsdp_run):
    assert_trained_like(one_process, fsdp_run)
    assert built_on(fsdp_run) == [["cpu"], ["cpu"]]  # without meta_init, both ranks build in full
    assert is_distributed_checkpoint(fsdp_run / "checkpoints" / "last.ckpt")  # one shard per rank


@run_if(multiprocess=True)
def test_a_consolidated_fsdp_checkpoint_gives_a_single_process_model_the_same_outputs(fsdp_run, tmp_path):
    folder = fsdp_run / "checkpoints" / "last.ckpt"
    result = run_cli(
        "-m", "lmforge", "consolidate", str(folder), "--out", str(tmp_path / "model.safetensors")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with safe_open(tmp_path / "model.safetensors", "pt") as handle:
        hparams = json.loads(handle.metadata()["hyper_parameters"])
        weights = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    consolidated, trained = CausalLMPretraining(**hparams), CausalLMPretraining(**hparams)
    consolidated.load_state_dict(weights, strict=False)
    trained.load_state_dict(torch.load(fsdp_run / "params" / "rank0.pt"), strict=False)
    tokens = torch.randint(0, consolidated.config.vocab_size, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(consolidated.eval()(tokens), trained.eval()(tokens), atol=0, rtol=0)
    assert set(weights) >= {name for name, _ in trained.named_parameters()}


@run_if(multiprocess=True)
def test_with_meta_init_fsdp_gives_the_model_of_a_full_build_on_every_rank(fsdp_run, tmp_path):
    # Rank 1 builds on the meta device and receives its shards from rank 0: the same start, so the
    # same trained weights (to the bit) as the run that built the model in full on both ranks.
    run_dir = train_cli(
        tmp_path, "meta", *EXACT, "data.batch_size=4", *FSDP, "trainer.strategy.meta_init=true"
    )
    assert built_on(run_dir) == [["cpu"], ["meta"]]  # rank 1 allocated nothing until its shards came
    expected, got = (torch.load(folder / "params" / "rank1.pt") for folder in (fsdp_run, run_dir))
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert torch.equal(got[name], value), f"{name} differs from the full build's"
    assert train_losses(run_dir) == train_losses(fsdp_run)


@run_if(multiprocess=True)
def test_an_fsdp_run_resumes_from_its_distributed_checkpoint(fsdp_run, tmp_path):
    folder = fsdp_run / "checkpoints" / "last.ckpt"
    run_dir = train_cli(
        tmp_path, "resumed", *EXACT, "data.batch_size=4", *FSDP, f"ckpt_path={folder}", "trainer.max_steps=8"
    )
    assert len(train_losses(run_dir)) == 2  # steps 7 and 8
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights=False)["global_step"] == 8


@run_if(multiprocess=True)
def test_with_lora_an_fsdp_checkpoint_holds_the_method_alone_and_reloads(one_process, tmp_path):
    # meta_init: rank 1 gets the weights rank 0 loaded from init_from, the frozen base kept as it was
    base = one_process / "checkpoints" / "last.ckpt"
    run_dir = train_cli(
        tmp_path,
        "lora",
        *EXACT,
        "data.batch_size=4",
        *FSDP,
        "trainer.strategy.meta_init=true",
        f"model.init_from={base}",
        "peft=lora",
    )
    assert built_on(run_dir) == [["cpu"], ["meta"]]
    pretrained = read_checkpoint(base)["state_dict"]
    trained = torch.load(run_dir / "params" / "rank1.pt")
    frozen = [name for name in trained if ".lora." not in name]
    assert frozen and all(torch.equal(trained[n], pretrained[n.replace(".base.", ".")]) for n in frozen)
    folder = run_dir / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(folder)["state_dict"]
    assert saved and all(".lora." in name for name in saved)
    assert (run_dir / "peft" / "adapter_model.safetensors").is_file()
    task, _, _ = load_task(str(folder))  # the frozen rest comes from model.init_from
    for name, value in saved.items():
        assert torch.equal(task.state_dict()[name], value)
    assert torch.isfinite(task(torch.randint(0, task.config.vocab_size, (1, 8)))).all()


@run_if(multiprocess=True)
def test_fsdp_trains_an_encoder_whose_head_reads_the_embedding_outside_forward(tmp_path):
    run_dir = train_cli(tmp_path, "bert", *TINY, *SHORT[:2], "trainer.log_every_n_steps=1", *FSDP)
    ranks = [torch.load(run_dir / "params" / f"rank{r}.pt") for r in (0, 1)]
    assert all(torch.equal(value, ranks[1][name]) for name, value in ranks[0].items())
    assert len(train_losses(run_dir)) == 6


@run_if(min_gpus=1, deepspeed=True, linux=True)
@pytest.mark.parametrize("preset", ["deepspeed_zero2", "deepspeed_zero3"])
def test_deepspeed_zero_trains_on_gpus(preset, tmp_path):
    devices = min(2, torch.cuda.device_count())  # ZeRO runs on one GPU too (nothing to shard across)
    overrides = [o for o in EXACT if o != "trainer.accelerator=cpu"]
    gpus = ["trainer.accelerator=gpu", f"trainer.devices={devices}", f"strategy={preset}"]
    run_dir = train_cli(tmp_path, preset, *overrides, "data.batch_size=4", *gpus)
    losses = train_losses(run_dir)
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()  # DeepSpeed writes a folder per checkpoint
    assert all((run_dir / "params" / f"rank{r}.pt").is_file() for r in range(devices))
