"""Sharded strategies: FSDP2 through Lightning's ModelParallelStrategy, and DeepSpeed ZeRO.

``FSDP2Strategy`` is ``ModelParallelStrategy`` with data parallelism over every process (no tensor
parallelism) and the options of torch's ``fully_shard``; ``LanguageTask.configure_model`` calls
``shard_task`` when the run's strategy is a ``ModelParallelStrategy``. It runs on GPUs and on CPUs
(gloo), unlike Lightning's ``FSDPStrategy`` (FSDP1, CUDA only). ``DeepSpeedZeroStrategy`` is
Lightning's ``DeepSpeedStrategy`` (CUDA only) that lets ZeRO-Offload step our AdamW.

With ``meta_init``, only global rank 0 builds the task in full (in CPU memory: initialised, loaded
from ``model.init_from``, the tuning method applied); every other rank builds it on the meta device,
which allocates nothing. ``shard_task`` then shards both, and rank 0 broadcasts its weights so that
each rank keeps its own shard: the model is whole once per job, not once per process, and the
sharded model is exactly the one a full build on every rank gives.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, ModelParallelStrategy
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

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


def builds_on_meta(strategy: Any, global_rank: int) -> bool:
    """Whether this process builds the task on the meta device: with ``meta_init``, all but rank 0."""
    return bool(getattr(strategy, "meta_init", False)) and global_rank != 0


def is_on_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in (*module.parameters(), *module.buffers()))


def shard_task(
    task: nn.Module, mesh: DeviceMesh, device: torch.device, broadcast: bool = False, **options: Any
) -> None:
    """``fully_shard`` every Transformer block, then the whole task (embeddings, heads, the rest).

    A block's weights are gathered just before it runs and freed after (``reshard_after_forward``);
    the root unit holds what no block owns (tied embeddings included), so every parameter is sharded
    and its gradient reduced. The root stays gathered after its forward until the backward is done:
    heads read its weights outside ``forward`` (the MLM head takes the token embedding). A task sharded
    already is left as it is.

    ``broadcast`` (``meta_init``): rank 0 holds the task in full and the others on the meta device.
    Unit by unit, the others get memory for their shards and rank 0 sends the unit's weights, each
    rank keeping its shard; rank 0's full copy of a unit is freed once sent, so it never holds the
    whole model twice.
    """
    if isinstance(task, FSDPModule):
        return
    for module in task.modules():
        if isinstance(module, TransformerBlock):
            shard_unit(module, mesh, device, broadcast, options)
    shard_unit(task, mesh, device, broadcast, {**options, "reshard_after_forward": False})


def shard_unit(
    unit: nn.Module, mesh: DeviceMesh, device: torch.device, broadcast: bool, options: dict[str, Any]
) -> None:
    """``fully_shard`` one unit; with ``broadcast``, then fill every rank's shards from rank 0's weights
    of the unit (those no inner unit, sharded before, holds)."""
    on_meta = is_on_meta(unit)
    full = {}
    if broadcast and not on_meta:  # the inner units are DTensors by now, and were sent already
        full = {k: v for k, v in unit.state_dict().items() if not isinstance(v, DTensor)}
    fully_shard(unit, mesh=mesh, **options)
    if not broadcast:
        return
    if on_meta:
        materialize(unit, device)
    settings = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    set_model_state_dict(unit, full, options=settings)


def materialize(task: nn.Module, device: torch.device) -> None:
    """Memory on ``device`` for every tensor of ``task`` still on the meta device.

    Values that checkpoints do not hold (non-persistent buffers: sinusoidal and rotary tables) are
    recomputed by their module's ``reset_parameters``; everything else is filled by the broadcast.
    Modules without meta tensors (metrics, built on the CPU) are left alone.
    """
    for module in task.modules():
        tensors = (*module.parameters(recurse=False), *module.buffers(recurse=False))
        if not any(t.is_meta for t in tensors):
            continue
        module.to_empty(device=device, recurse=False)
        if module._non_persistent_buffers_set:
            module.reset_parameters()


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
