"""Sharded strategies: FSDP2 through Lightning's ModelParallelStrategy, and DeepSpeed ZeRO.

``FSDP2Strategy`` is ``ModelParallelStrategy`` with data parallelism over every process (no tensor
parallelism) and the options of torch's ``fully_shard``; the task shards itself in ``configure_model``
(``lmforge.tasks.sharding``). It runs on GPUs and on CPUs (gloo), unlike Lightning's ``FSDPStrategy``
(FSDP1, CUDA only). ``DeepSpeedZeroStrategy`` is Lightning's ``DeepSpeedStrategy`` (CUDA only) that
lets ZeRO-Offload step our AdamW.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, ModelParallelStrategy
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

from lmforge.errors import ConfigError

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
        meta_init: bool = False,
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
        self.meta_init = meta_init

    def setup_environment(self) -> None:
        # ModelParallelStrategy's "auto" means one data-parallel group per node; here it is every process
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


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
