"""Instruction tuning (supervised fine-tuning) of a decoder: the loss on the response tokens alone.

The batches (``lmforge.data.sft``) label every prompt position ``IGNORE_INDEX``, so the mean
cross-entropy, and the perplexity logged beside it, are per response token (its end-of-text token
included). Packed batches carry ``position_ids`` and ``segment_ids`` that keep the pairs of a row apart.
The test step (``lmforge eval``) also generates a response greedily, with the KV cache, for the first
``objective.eval_generations`` prompts and scores it against the reference (``GenerationMetrics``);
``generations`` then holds the prompts, references and generated texts.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from lmforge.io.tokenizers import end_of_text_id
from lmforge.models.decoding import generate
from lmforge.objectives import IGNORE_INDEX
from lmforge.objectives.settings import InstructionTuningSettings
from lmforge.tasks.base import METRICS_DEVICE, ModelArg, ObjectiveArg, OptimArg, PeftArg
from lmforge.tasks.causal_lm import CausalLMPretraining
from lmforge.tasks.text_metrics import GenerationMetrics

Batch = dict[str, Any]


class InstructionTuning(CausalLMPretraining):
    """A ``DecoderModel`` trained on prompt/response pairs from ``InstructionDataModule``.

    ``tokenizer`` (the data's; not saved with the settings, checkpoints carry it) turns generated
    tokens back into text for evaluation, and starts prompt tuning from a text (``peft.init=text``).
    """

    objective_type = InstructionTuningSettings
    objective: InstructionTuningSettings

    def __init__(
        self,
        model: ModelArg,
        objective: ObjectiveArg,
        optim: OptimArg,
        peft: PeftArg = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__(model, objective, optim, peft, tokenizer)
        self.tokenizer = tokenizer
        with METRICS_DEVICE:
            self.test_loss = MeanMetric()
            self.test_generation = GenerationMetrics()
        self.generations: list[dict[str, str]] = []

    @classmethod
    def rebuild(cls, hparams: dict[str, Any], tokenizer: Any) -> InstructionTuning:
        return cls(**hparams, tokenizer=tokenizer)

    @classmethod
    def data_arguments(cls, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        return {"tokenizer": datamodule.tokenizer}

    def loss(self, batch: Batch) -> torch.Tensor:
        return self(
            batch["input_ids"],
            labels=batch["labels"],
            position_ids=batch.get("position_ids"),
            segment_ids=batch.get("segment_ids"),
        )

    def tokens_in(self, batch: Batch) -> torch.Tensor:
        return batch["attention_mask"].sum()

    def targets_in(self, batch: Batch) -> torch.Tensor:
        return (batch["labels"] != IGNORE_INDEX).sum()

    # ----------------------------------------------------------------------------------------------
    # Test: the response loss, and generations scored against the references

    def on_test_epoch_start(self) -> None:
        self.generations = []

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.test_loss.update(self.loss(batch), self.targets_in(batch))
        limit = self.objective.eval_generations
        wanted = len(batch["prompt_ids"]) if limit is None else max(0, limit - len(self.generations))
        if wanted == 0 or self.tokenizer is None:
            return
        generated = self.respond(batch["prompt_ids"][:wanted])
        prompts, references = batch["prompts"][:wanted], batch["responses"][:wanted]
        self.test_generation.update(generated, references)
        self.generations.extend(
            {"prompt": prompt, "reference": reference, "generated": text}
            for prompt, reference, text in zip(prompts, references, generated, strict=True)
        )

    def respond(self, prompts: list[list[int]]) -> list[str]:
        """Greedy responses (KV cache, up to ``objective.max_new_tokens`` tokens, ended by the
        end-of-text token) to prompts already put in the template and encoded."""
        eot = end_of_text_id(self.tokenizer)
        room = self.backbone.config.max_seq_len - self.backbone.n_virtual_tokens - max(map(len, prompts))
        new_tokens = min(self.objective.max_new_tokens, room)
        if new_tokens < 1:
            return [""] * len(prompts)
        outputs = generate(self.backbone, prompts, new_tokens, eos_id=eot, pad_id=eot)
        return [self.tokenizer.decode(ids) for ids in outputs]

    def on_test_epoch_end(self) -> None:
        loss = self.test_loss.compute()
        self.test_loss.reset()
        values = {"test/loss": loss, "test/perplexity": torch.exp(loss)}
        if self.test_generation.count:
            values.update({f"test/{name}": value for name, value in self.test_generation.compute().items()})
            self.test_generation.reset()
        self.log_dict(values)
