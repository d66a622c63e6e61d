"""What Lightning's ThroughputMonitor needs from a batch and a model.

``ThroughputMonitor`` (conf/callbacks/throughput.yaml) times the steps, counts samples with
``batch_samples`` and tokens with ``batch_tokens``, and reads ``flops_per_batch`` from the task (set
each step from the backbone's ``flops_per_token``) to log FLOP/s and, on a GPU Lightning knows the
peak of, the model FLOPs utilisation (MFU).
"""

from __future__ import annotations

from typing import Any

import torch


def batch_samples(batch: dict[str, torch.Tensor]) -> int:
    return int(batch["input_ids"].shape[0])


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real tokens of a batch: padding (attention mask 0) does not count."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class BatchFlops:
    """Training FLOPs of a batch: every position of the (padded) batch costs ``flops_per_token``.

    ``flops_per_token`` counts the parameters, so it is computed once per batch width, not per step.
    """

    def __init__(self, backbone: Any) -> None:
        self.backbone = backbone
        self.per_token: dict[int, int] = {}

    def __call__(self, input_ids: torch.Tensor) -> int:
        width = input_ids.shape[1]
        if width not in self.per_token:
            self.per_token[width] = self.backbone.flops_per_token(width)
        return self.per_token[width] * input_ids.numel()
