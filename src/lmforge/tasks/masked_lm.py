"""BERT pretraining: masked-language modelling, optionally with next-sentence prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from lmforge.models import build_backbone
from lmforge.objectives import IGNORE_INDEX, MaskedLMHead, NextSentenceHead, linear_cross_entropy
from lmforge.objectives.settings import MaskedLMSettings
from lmforge.tasks.base import METRICS_DEVICE, LanguageTask, ModelArg, ObjectiveArg, OptimArg, PeftArg
from lmforge.tasks.throughput import BatchFlops

METRICS = ("mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc")


class BertPretraining(LanguageTask):
    """Backbone + MLM head (+ NSP head), trained on batches from ``MaskedLMDataModule``.

    ``model``, ``objective``, ``optim`` and ``peft`` are checked settings or their plain form (the
    model's with a ``_target_`` naming its config class), so a checkpoint rebuilds the module alone.
    The MLM head runs only on the masked positions: the vocabulary projection, the costliest matrix
    product of a small model, shrinks to about 15 % of the tokens.
    """

    objective_type = MaskedLMSettings
    objective: MaskedLMSettings

    def __init__(
        self, model: ModelArg, objective: ObjectiveArg, optim: OptimArg, peft: PeftArg = None
    ) -> None:
        super().__init__()
        optim, peft = self.take_settings(model, objective, optim, peft)
        self.backbone = build_backbone(self.config)
        self.mlm_head = MaskedLMHead(
            self.config.d_model,
            self.config.vocab_size,
            self.config.norm_eps,
            self.config.init_std,
            self.config.activation,
            self.config.tie_embeddings,
        )
        self.nsp = self.objective.nsp
        self.nsp_weight = float(self.objective.nsp_weight)
        self.nsp_head = NextSentenceHead(self.config.d_model, self.config.init_std) if self.nsp else None
        self.prepare_backbone(optim, peft)
        self.batch_flops = BatchFlops(self.backbone)
        names = METRICS if self.nsp else METRICS[:2]
        with METRICS_DEVICE:
            self.val_metrics = torch.nn.ModuleDict({name: MeanMetric() for name in names})

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.backbone(input_ids, token_type_ids, attention_mask)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses and accuracies of one batch, with the counts they average over."""
        hidden = self(batch["input_ids"], batch.get("token_type_ids"), batch.get("attention_mask"))
        picked = batch["labels"] != IGNORE_INDEX
        targets = batch["labels"][picked]
        # no masked token in the batch: a loss of zero whose zero gradients still reach every head parameter
        mlm_loss, predicted = linear_cross_entropy(
            self.mlm_head.transform(hidden[picked]),
            self.mlm_head.decoder_weight(self.backbone.token_embedding.weight),
            targets,
            self.mlm_head.bias,
            predict=True,
        )
        mlm_acc = (predicted == targets).float().sum() / max(1, targets.numel())
        out = {
            "mlm_loss": mlm_loss,
            "mlm_acc": mlm_acc,
            "mlm_count": torch.tensor(targets.numel(), device=hidden.device),
            "loss": mlm_loss,
        }
        if self.nsp_head is not None:
            nsp_logits = self.nsp_head(hidden)
            labels = batch["next_sentence_label"]
            out["nsp_loss"] = F.cross_entropy(nsp_logits.float(), labels)
            out["nsp_acc"] = (nsp_logits.argmax(-1) == labels).float().mean()
            out["loss"] = mlm_loss + self.nsp_weight * out["nsp_loss"]
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.flops_per_batch = self.batch_flops(batch["input_ids"])  # read by ThroughputMonitor
        batch_size = batch["input_ids"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=batch_size)
        logged = {f"train/{name}": out[name] for name in self.val_metrics}
        logged["train/perplexity"] = torch.exp(out["mlm_loss"].detach())
        self.log_dict(logged, batch_size=batch_size)
        return out["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        count = out["mlm_count"]
        self.val_metrics["mlm_loss"].update(out["mlm_loss"], count)
        self.val_metrics["mlm_acc"].update(out["mlm_acc"], count)
        if self.nsp_head is not None:
            batch_size = batch["input_ids"].shape[0]
            self.val_metrics["nsp_loss"].update(out["nsp_loss"], batch_size)
            self.val_metrics["nsp_acc"].update(out["nsp_acc"], batch_size)

    def on_validation_epoch_end(self) -> None:
        values = {name: metric.compute() for name, metric in self.val_metrics.items()}
        for metric in self.val_metrics.values():
            metric.reset()
        values["loss"] = values["mlm_loss"] + self.nsp_weight * values.get("nsp_loss", 0.0)
        values["perplexity"] = torch.exp(values["mlm_loss"])
        shown = ("loss", "mlm_acc", "nsp_acc")
        for name, value in values.items():
            self.log(f"val/{name}", value, prog_bar=name in shown)

    def head_modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.mlm_head, self.nsp_head) if m is not None]

    def pretrained_targets(self) -> dict[str, torch.nn.Module]:
        return {"backbone.": self.backbone, **{f"{name}.": m for name, m in self.heads_by_name().items()}}

    def heads_by_name(self) -> dict[str, torch.nn.Module]:
        return {"mlm_head": self.mlm_head, **({"nsp_head": self.nsp_head} if self.nsp_head else {})}
