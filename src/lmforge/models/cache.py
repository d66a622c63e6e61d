"""A preallocated key/value cache for incremental decoding: one buffer per layer, filled in place."""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's view of a ``KVCache``: writes new keys/values at the cache's length, returns all."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, start: int) -> None:
        self.keys = keys
        self.values = values
        self.start = start

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.start + k.shape[2]
        self.keys[:, :, self.start : end] = k
        self.values[:, :, self.start : end] = v
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """Keys and values of every layer for ``max_len`` positions, allocated once.

    ``length`` counts the positions already written; the model advances it after each forward pass,
    so the same cache serves the prompt (many positions at once) and each new token.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (n_layers, batch_size, n_kv_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self.keys[index], self.values[index], self.length)

    def advance(self, n_positions: int) -> None:
        if self.length + n_positions > self.max_len:
            raise ValueError(
                f"the cache holds {self.max_len} positions; {self.length} + {n_positions} do not fit"
            )
        self.length += n_positions
