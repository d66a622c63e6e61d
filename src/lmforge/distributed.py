"""Sharded strategies: FSDP2 through Lightning's ModelParallelStrategy, and DeepSpeed ZeRO.

``FSDP2Strategy`` is ``ModelParallelStrategy`` with data parallelism over every process (no tensor
parallelism) and the options of torch's ``fully_shard``; ``LanguageTask.configure_model`` calls
``shard_task`` when the run's strategy is a ``ModelParallelStrategy``. It runs on GPUs and on CPUs
(gloo), unlike Lightning's ``FSDPStrategy`` (FSDP1, CUDA only). ``DeepSpeedZeroStrategy`` is
Lightning's ``DeepSpeedStrategy`` (CUDA only) that lets ZeRO-Offload step our AdamW.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, ModelParallelStrategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard

from lmforge.errors import ConfigError
from lmforge.models.block import TransformerBlock

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(key: str, name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    if name not in DTYPES:
        raise ConfigError(
            f"trainer.strategy.{key}", f"trainer.strategy.{key}={name} is not one of {', '.join(DTYPES)}"
        )
    return DTYPES[name]


class FSDP2Strategy(ModelParallelStrategy):
    """``ModelParallelStrategy`` sharding over all processes, carrying ``fully_shard``'s options."""

    def __init__(
        self,
        data_parallel_size: int | str = "auto",
        reshard_after_forward: bool = True,
        param_dtype: str | None = None,
        reduce_dtype: str | None = None,
        cpu_offload: bool = False,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
    ) -> None:
        super().__init__(
            data_parallel_size=data_parallel_size,
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
        )
        self.fully_shard_options: dict[str, Any] = {
            "reshard_after_forward": reshard_after_forward,
            "mp_policy": MixedPrecisionPolicy(
                param_dtype=_dtype("param_dtype", param_dtype),
                reduce_dtype=_dtype("reduce_dtype", reduce_dtype),
            ),
        }
        if cpu_offload:
            self.fully_shard_options["offload_policy"] = CPUOffloadPolicy()

    def setup_environment(self) -> None:
        # ModelParallelStrategy's "auto" means one data-parallel group per node; here it is every process
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def shard_task(task: nn.Module, mesh: DeviceMesh, **options: Any) -> None:
    """``fully_shard`` every Transformer block, then the whole task (embeddings, heads, the rest).

    A block's weights are gathered just before it runs and freed after (``reshard_after_forward``);
    the root unit holds what no block owns (tied embeddings included), so every parameter is sharded
    and its gradient reduced. The root stays gathered after its forward until the backward is done:
    heads read its weights outside ``forward`` (the MLM head takes the token embedding). A task sharded
    already is left as it is.
    """
    if isinstance(task, FSDPModule):
        return
    for module in task.modules():
        if isinstance(module, TransformerBlock):
            fully_shard(module, mesh=mesh, **options)
    fully_shard(task, mesh=mesh, **{**options, "reshard_after_forward": False})


class DeepSpeedZeroStrategy(DeepSpeedStrategy):
    """Lightning's ``DeepSpeedStrategy`` whose ZeRO-Offload accepts the task's torch AdamW.

    DeepSpeed refuses a client optimizer with an offloaded optimizer state unless told otherwise
    (``zero_force_ds_cpu_optimizer``); AdamW then steps on the CPU in PyTorch, slower than DeepSpeed's
    compiled ``DeepSpeedCPUAdam`` but with the same settings and schedule as every other strategy.
    """

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        if isinstance(self.config, dict):
            self.config.setdefault("zero_force_ds_cpu_optimizer", False)
