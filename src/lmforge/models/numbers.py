"""What a model knows about itself: parameter counts and training FLOPs per token."""

from __future__ import annotations

from torch import nn


class ModelNumbers:
    """Mixed into a backbone that has ``config`` (``n_layers``, ``d_model``) and says which of its
    parameters are looked up rather than multiplied (``lookup_parameters``)."""

    def num_parameters(self: nn.Module, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def lookup_parameters(self) -> int:
        """Parameters read by index (embedding tables that no matrix product reuses)."""
        raise NotImplementedError

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward): 6 N + 12 L d T.

        N counts the parameters used in matrix products (so not lookup tables; a tied head counts its
        matrix once), L the layers, d the width and T the context: the second term is the attention
        scores and their weighted sum (Kaplan et al. 2020; PaLM appendix B).
        """
        config = self.config
        dense = self.num_parameters() - self.lookup_parameters()
        return 6 * dense + 12 * config.n_layers * config.d_model * seq_len
