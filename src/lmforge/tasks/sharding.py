"""FSDP2 sharding of a task: ``fully_shard`` per Transformer block, then the root.

``LanguageTask.configure_model`` calls ``shard_task`` when the run's strategy is a
``ModelParallelStrategy`` (``lmforge.run.strategies.FSDP2Strategy``, strategy=fsdp).

With ``meta_init``, only global rank 0 builds the task in full (in CPU memory: initialised, loaded
from ``model.init_from``, the tuning method applied); every other rank builds it on the meta device,
which allocates nothing. ``shard_task`` then shards both, and rank 0 broadcasts its weights so that
each rank keeps its own shard: the model is whole once per job, not once per process, and the
sharded model is exactly the one a full build on every rank gives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from lmforge.models.block import TransformerBlock


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
