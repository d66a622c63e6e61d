"""BERT pretraining's losses and accuracies against a computation by hand: the loss is the masked-LM loss
plus objective.nsp_weight times the next-sentence loss."""

import pytest
import torch
import torch.nn.functional as F

from lmforge.objectives import IGNORE_INDEX
from lmforge.tasks import BertPretraining

MODEL = {
    "_target_": "lmforge.models.BertConfig",
    "vocab_size": 60,
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "d_ff": 64,
    "max_seq_len": 16,
    "dropout": 0.0,
    "attention_dropout": 0.0,
}


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 60, (6, 12), generator=generator)
    labels = torch.full_like(ids, IGNORE_INDEX)
    picked = torch.rand(6, 12, generator=generator) < 0.4
    labels[picked] = 0  # set to the model's guesses and misses by the test
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0
    labels[0, 9:] = IGNORE_INDEX
    return {
        "input_ids": ids,
        "token_type_ids": (torch.arange(12) >= 6).long().expand(6, -1).clone(),
        "attention_mask": mask,
        "labels": labels,
        "next_sentence_label": torch.tensor([0, 1, 1, 0, 1, 0]),
    }


@pytest.mark.parametrize("nsp_weight", [1.0, 0.3])
def test_the_loss_is_the_masked_lm_loss_plus_the_weighted_next_sentence_loss(nsp_weight):
    torch.manual_seed(0)
    task = BertPretraining(MODEL, {"nsp": True, "nsp_weight": nsp_weight}, {"lr": 1e-3}).eval()
    data = batch()
    picked = data["labels"] != IGNORE_INDEX
    with torch.no_grad():
        hidden = task(data["input_ids"], data["token_type_ids"], data["attention_mask"])
        logits = task.mlm_head(hidden, task.backbone.token_embedding.weight)
        guesses = logits[picked].argmax(-1)
        right = torch.arange(len(guesses)) % 3 == 0  # a third of the targets are the model's guesses
        data["labels"][picked] = torch.where(right, guesses, (guesses + 1) % 60)
        out = task.losses(data)
        mlm_loss = F.cross_entropy(logits[picked], data["labels"][picked])
        mlm_acc = (logits[picked].argmax(-1) == data["labels"][picked]).float().mean()
        nsp_logits = task.nsp_head(hidden)
        nsp_loss = F.cross_entropy(nsp_logits, data["next_sentence_label"])
        nsp_acc = (nsp_logits.argmax(-1) == data["next_sentence_label"]).float().mean()
    assert mlm_acc == right.float().mean() and 0 < nsp_acc < 1
    torch.testing.assert_close(out["mlm_loss"], mlm_loss)
    torch.testing.assert_close(out["mlm_acc"], mlm_acc)
    torch.testing.assert_close(out["nsp_loss"], nsp_loss)
    torch.testing.assert_close(out["nsp_acc"], nsp_acc)
    torch.testing.assert_close(out["loss"], mlm_loss + nsp_weight * nsp_loss)
    assert out["mlm_count"] == picked.sum()


def test_without_next_sentence_prediction_the_loss_is_the_masked_lm_loss():
    torch.manual_seed(0)
    task = BertPretraining(MODEL, {"nsp": False}, {"lr": 1e-3}).eval()
    with torch.no_grad():
        out = task.losses(batch())
    assert task.nsp_head is None and "nsp_loss" not in out
    torch.testing.assert_close(out["loss"], out["mlm_loss"])
