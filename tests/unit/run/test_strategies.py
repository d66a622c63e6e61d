"""Scale-out strategies as presets: every preset composes with every kind of model preset, builds what
it names, is refused on a machine without the GPUs it needs, and DeepSpeed's configs validate offline."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lmforge.errors import ConfigError
from lmforge.run.checks import build
from lmforge.run.spec import resolve
from tests.conftest import CONF, compose_config, run_if

STRATEGIES = sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def one_model_of_each_kind() -> list[str]:
    """A model preset for each set of other presets the model presets choose (their ``defaults``: the
    objective, the trainer): a strategy composes with the models of a set alike."""
    kinds = {}
    for model in MODELS:
        defaults = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model}.yaml")).get("defaults")
        kinds.setdefault(repr(defaults), model)
    return sorted(kinds.values())


DEEPSPEED = [name for name in STRATEGIES if name.startswith("deepspeed")]


ZERO = {  # preset: (stage, optimizer offloaded, weights offloaded)
    "deepspeed_zero1": (1, False, False),
    "deepspeed_zero2": (2, False, False),
    "deepspeed_zero2_offload": (2, True, False),
    "deepspeed_zero3": (3, False, False),
    "deepspeed_zero3_offload": (3, True, True),
}


def test_the_strategy_presets_are_the_documented_ones():
    assert set(STRATEGIES) == {"auto", "ddp", "ddp_spawn", "ddp_cpu", "fsdp", *ZERO}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_composes_with_every_kind_of_model(strategy, tmp_path):
    models = one_model_of_each_kind()
    assert len(models) >= 3  # encoders, decoders, decoders with a trainer preset of their own
    for model in models:
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
