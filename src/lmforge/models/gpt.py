"""GPT-2 style decoder (Radford et al., 2019): pre-LN, learned positions, GELU MLP, tied LM head.

The architecture is ``DecoderModel``; this file fixes GPT-2's choices as the defaults of the config.
The presets ``conf/model/gpt_*.yaml`` and ``gpt2_*.yaml`` set the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.models.decoder import DecoderConfig


@dataclass
class GPTConfig(DecoderConfig):
    """GPT-2: learned positions, LayerNorm with biases, tanh-approximated GELU, tied head, residual
    projections initialised with std 0.02 / sqrt(2 x layers). ``DecoderConfig``'s defaults are these,
    at GPT-2 small's size (124 M)."""
