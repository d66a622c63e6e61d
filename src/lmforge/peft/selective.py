"""Methods that add nothing and only choose which existing parameters train.

``none``: full fine-tuning, everything trains. ``frozen``: the backbone is fixed and only the heads
train (a linear probe of its features). ``bitfit`` (Ben Zaken et al. 2022): the backbone's bias terms,
those of its norms included, and the heads.

The backbone stays a plain backbone, so ``merge`` has nothing to fold and a merged state dict is
simply its state dict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from torch import nn

from lmforge.peft.base import TuningMethod

log = logging.getLogger(__name__)


class FullFineTuning(TuningMethod):
    name = "none"
    mergeable = True

    def trainable_in(self, backbone: nn.Module) -> Iterable[nn.Parameter]:
        return backbone.parameters()


class LinearProbe(TuningMethod):
    name = "frozen"
    mergeable = True

    def trainable_in(self, backbone: nn.Module) -> Iterable[nn.Parameter]:
        return ()


class BitFit(TuningMethod):
    name = "bitfit"
    mergeable = True

    def trainable_in(self, backbone: nn.Module) -> Iterable[nn.Parameter]:
        """Every parameter named ``bias``; a backbone without any (LLaMA) gets a warning, since then
        only the heads train."""
        biases = [p for name, p in backbone.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]
        if not biases:
            log.warning(
                "peft.method=bitfit: %s has no bias terms (model.bias=false?), so only the heads train",
                type(backbone).__name__,
            )
        return biases
