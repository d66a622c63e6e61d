"""Scale-out strategies: every preset composes, GPU-only ones are refused on CPU, DeepSpeed configs
validate offline, and real multi-process runs (``python train.py`` as a subprocess: Lightning's DDP
re-runs the command for rank 1, so it cannot run inside pytest) train as one process would."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors import safe_open

from lmforge.errors import ConfigError
from lmforge.io.checkpoints import is_distributed_checkpoint, read_checkpoint
from lmforge.run.checks import build
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks import CausalLMPretraining

from .conftest import CONF, SHORT, TINY, compose_config, run_cli, run_if

STRATEGIES = sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DEEPSPEED = [name for name in STRATEGIES if name.startswith("deepspeed")]
ZERO = {  # preset: (stage, optimizer offloaded, weights offloaded)
    "deepspeed_zero1": (1, False, False),
    "deepspeed_zero2": (2, False, False),
    "deepspeed_zero2_offload": (2, True, False),
    "deepspeed_zero3": (3, False, False),
    "deepspeed_zero3_offload": (3, True, True),
}
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


def test_the_strategy_presets_are_the_documented_ones():
    assert set(STRATEGIES) == {"auto", "ddp", "ddp_spawn", "ddp_cpu", "fsdp", *ZERO}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_composes_with_every_model(strategy, tmp_path):
    for model in MODELS:
        cfg = compose_config([f"strategy={strategy}", f"model={model}"], tmp_path)
        node = cfg.trainer.strategy
        if strategy == "auto":
            assert node == "auto"
            continue
        assert OmegaConf.is_dict(node) and node._target_.rsplit(".", 1)[-1] in (
            "DDPStrategy",
            "FSDP2Strategy",
            "DeepSpeedZeroStrategy",
        ), f"{strategy} with {model}"
        if strategy in ZERO:
            assert node.stage == ZERO[strategy][0] and node.logging_batch_size_per_gpu == cfg.data.batch_size


def test_ddp_cpu_is_two_gloo_processes_on_the_cpu(tmp_path):
    cfg = compose_config(["strategy=ddp_cpu"], tmp_path)
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("cpu", 2)
    assert cfg.trainer.strategy.process_group_backend == "gloo"
    spawn = compose_config(["strategy=ddp_spawn"], tmp_path).trainer.strategy
    assert spawn.start_method == "spawn"


def test_fsdp_builds_a_model_parallel_strategy_with_fully_shard_options(tmp_path):
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.fsdp import CPUOffloadPolicy

    cfg = compose_config(
        ["strategy=fsdp", "trainer.strategy.param_dtype=bfloat16", "trainer.strategy.cpu_offload=true"],
        tmp_path,
    )
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, ModelParallelStrategy)
    options = strategy.fully_shard_options
    assert options["mp_policy"].param_dtype == torch.bfloat16 and options["reshard_after_forward"] is True
    assert isinstance(options["offload_policy"], CPUOffloadPolicy)
    cfg.trainer.strategy.param_dtype = "fp8"
    with pytest.raises(ConfigError, match="param_dtype=fp8 is not one of"):
        build(cfg.trainer.strategy)


def test_the_slurm_launcher_takes_its_nodes_from_the_trainer(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install -e ".[cluster]"')
    GlobalHydra.instance().clear()
    overrides = ["hydra/launcher=slurm", "strategy=ddp", "trainer.num_nodes=4", "trainer.devices=8"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        launcher = compose("train", overrides=overrides, return_hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (4, 8, 8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal concerns machines without a GPU")
@pytest.mark.parametrize("override", [*(f"strategy={s}" for s in DEEPSPEED), "trainer.strategy=fsdp"])
def test_gpu_only_strategies_are_refused_on_a_cpu_machine(override, tmp_path):
    cfg = compose_config([override], tmp_path)
    with pytest.raises(ConfigError, match=r"runs on CUDA GPUs only .* use strategy=ddp_cpu .* strategy=fsdp"):
        resolve(cfg)


@pytest.mark.parametrize(
    ("strategy", "built"),
    [("ddp_cpu", "DDPStrategy"), ("fsdp", "FSDP2Strategy"), ("ddp", "DDPStrategy"), ("auto", "auto")],
)
def test_cpu_strategies_pass_the_checks_and_reach_the_trainer(strategy, built, tmp_path):
    spec = resolve(compose_config([f"strategy={strategy}", "trainer.accelerator=cpu"], tmp_path))
    node = spec.trainer.strategy
    assert (node if isinstance(node, str) else node._target_.rsplit(".", 1)[-1]) == built


@run_if(deepspeed=True)
@pytest.mark.parametrize("preset", DEEPSPEED)
def test_deepspeed_presets_validate_with_deepspeeds_own_config_classes(preset, tmp_path):
    from deepspeed.runtime.config import DeepSpeedConfig
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from deepspeed.runtime.zero.offload_config import OffloadDeviceEnum

    cfg = compose_config([f"strategy={preset}"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)  # what Lightning hands DeepSpeed, less what fit() adds
    config = {
        **strategy.config,
        "gradient_accumulation_steps": cfg.trainer.accumulate_grad_batches,
        "gradient_clipping": cfg.trainer.gradient_clip_val,
    }
    zero = DeepSpeedZeroConfig(**config["zero_optimization"])
    stage, offload_optimizer, offload_weights = ZERO[preset]
    assert zero.stage == stage
    assert (
        zero.offload_optimizer is not None and zero.offload_optimizer.device == OffloadDeviceEnum.cpu
    ) is (offload_optimizer)
    assert (
        zero.offload_param is not None and zero.offload_param.device == OffloadDeviceEnum.cpu
    ) is offload_weights
    assert config["zero_force_ds_cpu_optimizer"] is False  # offload steps our AdamW on the CPU
    checked = DeepSpeedConfig(config)
    assert checked.zero_force_ds_cpu_optimizer is False
    assert checked.zero_optimization_stage == stage
    assert checked.train_micro_batch_size_per_gpu == cfg.data.batch_size


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
        "+callbacks.probe._target_=tests.strategy_probe.ParameterDump",
        f"+callbacks.probe.folder={run_dir / 'params'}",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


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
