"""Causal-LM pretraining: next-token cross-entropy over packed blocks, on a decoder backbone."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric

from lmforge.models import build_backbone
from lmforge.objectives import linear_cross_entropy
from lmforge.objectives.settings import CausalLMSettings
from lmforge.tasks.base import METRICS_DEVICE, LanguageTask, ModelArg, ObjectiveArg, OptimArg, PeftArg
from lmforge.tasks.throughput import BatchFlops


class CausalLMPretraining(LanguageTask):
    """A ``DecoderModel`` trained on batches from ``CausalLMDataModule``.

    Logs the loss (nats per token), its perplexity, and the tokens seen so far (summed over devices;
    stored in checkpoints, so a resumed run keeps counting).
    """

    objective_type = CausalLMSettings

    def __init__(
        self,
        model: ModelArg,
        objective: ObjectiveArg,
        optim: OptimArg,
        peft: PeftArg = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        optim, peft = self.take_settings(model, objective, optim, peft)
        self.backbone = build_backbone(self.config)
        self.prepare_backbone(optim, peft, tokenizer)
        self.batch_flops = BatchFlops(self.backbone)
        with METRICS_DEVICE:
            self.val_loss = MeanMetric()
        self.register_buffer("tokens_seen", torch.zeros((), dtype=torch.int64))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits (batch, seq, vocab); given ``labels`` (batch, seq), the mean cross-entropy
        instead, with the logits made a block of positions at a time and never kept whole
        (``linear_cross_entropy``). The loss is computed here, inside the task's call, because a
        sharded model (strategy=fsdp) gathers the head's weights only for that call. ``position_ids``
        and ``segment_ids``: sequences packed in one row (``DecoderModel.forward``)."""
        hidden = self.backbone(input_ids, attention_mask, position_ids, segment_ids=segment_ids)
        if labels is None:
            return self.backbone.logits(hidden)
        loss, _ = linear_cross_entropy(hidden.flatten(0, 1), self.backbone.output_weight, labels.flatten())
        return loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch["input_ids"], labels=batch["labels"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.flops_per_batch = self.batch_flops(batch["input_ids"])  # read by ThroughputMonitor
        self.tokens_seen += self.tokens_in(batch) * self.trainer.world_size
        batch_size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/perplexity", torch.exp(loss.detach()), batch_size=batch_size)
        self.log("train/tokens", self.tokens_seen.float(), batch_size=batch_size)
        return loss

    def tokens_in(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | int:
        """The real tokens of a batch (packed blocks have no padding)."""
        return batch["labels"].numel()

    def targets_in(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | int:
        """The positions the loss of a batch averages over (its weight in the validation mean)."""
        return batch["labels"].numel()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_loss.update(self.loss(batch), self.targets_in(batch))

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.val_loss.reset()
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/perplexity", torch.exp(loss))

    def head_modules(self) -> list[torch.nn.Module]:
        # an untied LM head is the task's head; a tied one is the token embedding, which the method decides
        return [self.backbone.lm_head] if self.backbone.lm_head is not None else []
