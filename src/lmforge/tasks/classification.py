"""Sequence and sentence-pair classification on any backbone: a head, its loss and its metrics.

``TextClassification`` is what every classifier of texts shares (the loss over label scores, metrics,
steps); ``SequenceClassification`` scores the labels with a new head, ``PromptLM``
(``lmforge.tasks.prompt_lm``) with the model's own LM head through a template.

BERT reads the [CLS] state through a tanh pooler (started from the NSP head's pooler when fine-tuning
from a BERT pretraining checkpoint), with segment ids telling the two texts of a pair apart. GPT and
LLaMA read the state of the last real token (the final <|endoftext|> the data appends), the only
position that has seen the whole input.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from lmforge.models import build_backbone, is_decoder
from lmforge.objectives.settings import ClassificationSettings
from lmforge.tasks.base import METRICS_DEVICE, LanguageTask, ModelArg, ObjectiveArg, OptimArg, PeftArg
from lmforge.tasks.throughput import BatchFlops


def classification_metrics(num_labels: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_labels, average="micro"),
            "macro_f1": MulticlassF1Score(num_labels, average="macro"),
        },
        prefix=prefix,
    )


class TextClassification(LanguageTask):
    """What classifiers of texts share, however they score the labels: cross-entropy over the label
    scores, accuracy and macro-F1, the steps, and predicted label names.

    Subclasses take their settings, call ``start_backbone`` and ``build_metrics`` around their own
    modules, and define ``label_scores`` (batch, num_labels). ``label_names`` (the label of each class
    index) is saved with the hyper-parameters, so a checkpoint predicts label strings on its own.
    """

    label_names: list[str]

    def start_backbone(self, label_names: list[str]) -> None:
        """The backbone of ``self.config``, whether it is a decoder, and the label of each class index."""
        self.backbone = build_backbone(self.config)
        self.decoder = is_decoder(self.config)
        self.label_names = list(label_names)

    def build_metrics(self) -> None:
        with METRICS_DEVICE:
            self.val_loss = MeanMetric()
            self.test_loss = MeanMetric()
            self.val_metrics = classification_metrics(len(self.label_names), "val/")
            self.test_metrics = classification_metrics(len(self.label_names), "test/")

    @classmethod
    def rebuild(cls, hparams: dict[str, Any], tokenizer: Any) -> TextClassification:
        return cls(**hparams, tokenizer=tokenizer)  # prompt tuning may start from a text

    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A score per label (batch, num_labels), higher for the more likely label."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.label_scores(batch)
        loss = F.cross_entropy(logits.float(), batch["labels"])
        self.flops_per_batch = self.batch_flops(batch["input_ids"])  # read by ThroughputMonitor
        batch_size = batch["labels"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log("train/acc", accuracy, batch_size=batch_size)
        return loss

    def _evaluate(
        self, batch: dict[str, torch.Tensor], loss_metric: MeanMetric, metrics: MetricCollection
    ) -> None:
        logits = self.label_scores(batch)
        loss_metric.update(F.cross_entropy(logits.float(), batch["labels"]), batch["labels"].shape[0])
        metrics.update(logits, batch["labels"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_loss, self.test_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_loss, self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_metrics)

    def _log_epoch(self, stage: str, loss: MeanMetric, metrics: MetricCollection) -> None:
        values = {f"{stage}/loss": loss.compute(), **metrics.compute()}
        loss.reset()
        metrics.reset()
        self.log_dict(values, prog_bar=True)

    @torch.no_grad()
    def predict_labels(self, batch: dict[str, torch.Tensor]) -> list[str]:
        return [self.label_names[i] for i in self.label_scores(batch).argmax(-1).tolist()]


class SequenceClassification(TextClassification):
    """Backbone + pooled state + linear classifier, trained with cross-entropy."""

    objective_type = ClassificationSettings
    objective: ClassificationSettings

    def __init__(
        self,
        model: ModelArg,
        objective: ObjectiveArg,
        optim: OptimArg,
        label_names: list[str],
        peft: PeftArg = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        optim, peft = self.take_settings(model, objective, optim, peft, label_names=list(label_names))
        self.start_backbone(label_names)
        width = self.config.d_model
        self.pooler = None if self.decoder else nn.Linear(width, width)
        self.dropout = nn.Dropout(float(self.objective.classifier_dropout))
        self.classifier = nn.Linear(width, len(self.label_names))
        for layer in (self.pooler, self.classifier):
            if layer is not None:
                nn.init.normal_(layer.weight, std=self.config.init_std)
                nn.init.zeros_(layer.bias)
        self.prepare_backbone(optim, peft, tokenizer)
        self.batch_flops = BatchFlops(self.backbone)
        self.build_metrics()

    @classmethod
    def data_arguments(cls, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """The label names, in class order, and the tokenizer (prompt tuning may start from a text)."""
        return {"label_names": datamodule.label_names, "tokenizer": datamodule.tokenizer}

    def head_modules(self) -> list[nn.Module]:
        return [m for m in (self.pooler, self.classifier) if m is not None]

    def optional_pretrained_targets(self) -> dict[str, nn.Module]:
        """What ``model.init_from`` may bring besides the backbone: BERT's pooler (the NSP head's in a
        pretraining checkpoint, ``pooler`` in a fine-tuned one) and a classifier of as many labels."""
        pooler = {"nsp_head.pooler.": self.pooler, "pooler.": self.pooler} if self.pooler is not None else {}
        return {**pooler, "classifier.": self.classifier}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class logits (batch, num_labels)."""
        if self.decoder:
            hidden = self.backbone(input_ids, attention_mask)
            last = attention_mask.sum(dim=1) - 1  # right padding: the last real token
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        else:
            hidden = self.backbone(input_ids, token_type_ids, attention_mask)
            pooled = torch.tanh(self.pooler(hidden[:, 0]))
        return self.classifier(self.dropout(pooled))

    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
