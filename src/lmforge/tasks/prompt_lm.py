"""Prompt-based classification: the model's own LM head rates each label's words at a template's slot.

No new classifier: BERT's masked-LM head scores the ``[MASK]`` of the filled template, a decoder's LM head
the tokens that follow it. A word's score is a log-probability over the whole vocabulary: BERT, the
log-probability of the word's first piece at the slot (one ``[MASK]`` holds one piece); decoders, the sum
of the log-probabilities of the word's tokens, each given the template and the tokens before it. A
label's score is the log of its words' summed probabilities (logsumexp), and training is cross-entropy
over the labels' scores: zero-shot, the pretrained heads already classify.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lmforge.objectives import MaskedLMHead
from lmforge.objectives.settings import PromptLMSettings
from lmforge.tasks.base import ModelArg, ObjectiveArg, OptimArg, PeftArg
from lmforge.tasks.classification import TextClassification
from lmforge.tasks.throughput import BatchFlops

WordIds = list[list[list[int]]]  # label index -> its words -> each word's token ids


def decoder_passes(label_words: WordIds) -> list[tuple[tuple[int, ...], list[tuple[int, int]]]]:
    """The forward passes that score every word on a decoder: words sharing all tokens but their last
    share a pass over the template followed by those tokens. Each pass: (the tokens appended, [(word
    number, its last token)]). Words of one token share the pass over the template alone."""
    passes: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    words = [ids for listed in label_words for ids in listed]
    for number, ids in enumerate(words):
        passes.setdefault(tuple(ids[:-1]), []).append((number, ids[-1]))
    return sorted(passes.items(), key=lambda item: len(item[0]))


class PromptLM(TextClassification):
    """Backbone + its pretrained LM head (BERT: the masked-LM head; decoders: the LM head), scoring the
    verbalizer's words at each example's slot (``batch["slots"]``, from ``PromptDataModule``).

    ``label_words`` (label -> words -> token ids, from the data) is saved with the hyper-parameters, so
    a checkpoint scores the labels alone.
    """

    objective_type = PromptLMSettings
    objective: PromptLMSettings

    def __init__(
        self,
        model: ModelArg,
        objective: ObjectiveArg,
        optim: OptimArg,
        label_names: list[str],
        label_words: WordIds,
        peft: PeftArg = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        label_words = [[[int(i) for i in ids] for ids in listed] for listed in label_words]
        optim, peft = self.take_settings(
            model, objective, optim, peft, label_names=list(label_names), label_words=label_words
        )
        self.start_backbone(label_names)
        config = self.config
        self.mlm_head = (
            None
            if self.decoder
            else MaskedLMHead(
                config.d_model,
                config.vocab_size,
                config.norm_eps,
                config.init_std,
                config.activation,
                config.tie_embeddings,
            )
        )
        self.passes = decoder_passes(label_words)
        self._register_words(label_words)
        self.prepare_backbone(optim, peft, tokenizer)
        self.batch_flops = BatchFlops(self.backbone)
        self.build_metrics()

    def _register_words(self, label_words: WordIds) -> None:
        """``word_of_label`` (labels, most words): the number of each label's words, padded with a word
        number that ``word_is_real`` masks; ``first_pieces``: each word's first token (BERT scores it)."""
        widest = max(len(listed) for listed in label_words)
        numbers, real, number = [], [], 0
        for listed in label_words:
            numbers.append([number + i for i in range(len(listed))] + [0] * (widest - len(listed)))
            real.append([True] * len(listed) + [False] * (widest - len(listed)))
            number += len(listed)
        first = [ids[0] for listed in label_words for ids in listed]
        # derived from the hyper-parameters: not part of the state dict
        self.register_buffer("word_of_label", torch.tensor(numbers), persistent=False)
        self.register_buffer("word_is_real", torch.tensor(real), persistent=False)
        self.register_buffer("first_pieces", torch.tensor(first), persistent=False)

    @classmethod
    def data_arguments(cls, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """The label names in class order, their words in tokens, and the tokenizer (prompt tuning may
        start from a text)."""
        return {
            "label_names": datamodule.label_names,
            "label_words": datamodule.label_words,
            "tokenizer": datamodule.tokenizer,
        }

    def head_modules(self) -> list[nn.Module]:
        # BERT's masked-LM head is a head; a decoder's untied LM head too, a tied one is the token embedding
        if self.mlm_head is not None:
            return [self.mlm_head]
        return [self.backbone.lm_head] if self.backbone.lm_head is not None else []

    def pretrained_targets(self) -> dict[str, nn.Module]:
        """The backbone and, for BERT, the masked-LM head: the slot is scored with pretrained weights."""
        heads = {"mlm_head.": self.mlm_head} if self.mlm_head is not None else {}
        return {"backbone.": self.backbone, **heads}

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        """Label scores (batch, num_labels): the log of each label's words' summed probabilities."""
        word_scores = self.decoder_word_scores if self.decoder else self.encoder_word_scores
        words = word_scores(input_ids, attention_mask, slots)
        scores = words[:, self.word_of_label].masked_fill(~self.word_is_real, float("-inf"))
        return torch.logsumexp(scores, dim=-1)

    def encoder_word_scores(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        """BERT: each word's first piece's log-probability at the [MASK] slot (batch, words)."""
        hidden = self.backbone(input_ids, None, attention_mask)
        at_slot = hidden[torch.arange(hidden.shape[0], device=hidden.device), slots]
        logits = self.mlm_head(at_slot, self.backbone.token_embedding.weight)
        return F.log_softmax(logits.float(), dim=-1)[:, self.first_pieces]

    def decoder_word_scores(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        """Decoders: each word's summed token log-probabilities after the template (batch, words), one
        forward pass per group of words that share their tokens but the last (``decoder_passes``)."""
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        n_words = sum(len(words) for _, words in self.passes)
        scores = input_ids.new_zeros((input_ids.shape[0], n_words), dtype=torch.float32)
        for appended, words in self.passes:
            extra = torch.tensor(appended, dtype=input_ids.dtype, device=input_ids.device)
            ids, mask = input_ids, attention_mask
            after = slots[:, None] + 1 + torch.arange(len(appended), device=input_ids.device)
            if len(appended):  # right padding: the tokens go right after each row's template
                ids = F.pad(input_ids, (0, len(appended))).scatter(1, after, extra.expand(len(rows), -1))
                mask = F.pad(attention_mask, (0, len(appended))).scatter(1, after, 1)
            hidden = self.backbone(ids, mask)
            read = torch.cat((slots[:, None], after), dim=1)  # the slot, then each appended token
            states = hidden[rows[:, None], read]  # (batch, appended + 1, d_model)
            log_probs = F.log_softmax(self.backbone.logits(states).float(), dim=-1)
            given = log_probs[:, :-1].gather(2, extra.expand(len(rows), -1)[..., None])[..., 0].sum(-1)
            numbers = [number for number, _ in words]
            last = torch.tensor([token for _, token in words], device=input_ids.device)
            scores[:, numbers] = given[:, None] + log_probs[:, -1, last]
        return scores

    def label_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch["input_ids"], batch["attention_mask"], batch["slots"])
