"""Prompt-based fine-tuning (objective=prompt_lm) without a training loop: templates, their filling and
cutting, the verbalizer's words, label scores against a hand computation, few-shot draws."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmforge.data.labeled import ClassificationDataModule, CsvSource, LabeledExample
from lmforge.data.labeled.prompting import PromptEncoder, word_ids
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import END_OF_TEXT, special_ids
from lmforge.models import BertConfig, GPTConfig, LlamaConfig
from lmforge.objectives.prompt import LITERAL, SLOT, TEXT, TEXT_PAIR, PromptTemplate, parse
from lmforge.objectives.settings import PromptLMSettings
from lmforge.tasks import PromptLM
from tests.conftest import TOPICS

WORDS = {"cooking": ["food"], "travel": ["trip"]}
SENTENCES = [line.split(",", 1)[0] for line in TOPICS.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def wordpiece():
    return TokenizerSettings(kind="wordpiece", vocab_size=300, min_frequency=1).train(SENTENCES)


@pytest.fixture(scope="module")
def bpe():
    return TokenizerSettings(kind="bpe", vocab_size=400, min_frequency=1).train(SENTENCES)


def template(**forms) -> PromptTemplate:
    return PromptTemplate.from_dict({"words": WORDS, **forms})


# ------------------------------------------------------------------------------------------------
# Templates as text


def test_a_template_is_parsed_into_its_texts_literals_and_slot():
    pieces = parse("{text} ? [MASK] , {text_pair}", "template.encoder")
    assert [p.kind for p in pieces] == [TEXT, LITERAL, SLOT, LITERAL, TEXT_PAIR]
    assert [p.value for p in pieces if p.kind == LITERAL] == [" ? ", " , "]


@pytest.mark.parametrize(
    ("forms", "key", "says"),
    [
        ({"encoder": "It was [MASK]."}, "template.encoder", "must hold {text} once"),
        ({"encoder": "{text} It was {label}."}, "template.encoder", "placeholder {label}"),
        ({"encoder": "{text} It was good."}, "template.encoder", "must hold one [MASK]"),
        ({"encoder": "[MASK] {text} [MASK]"}, "template.encoder", "must hold one [MASK]"),
        ({"decoder": "{text} It was [MASK]."}, "template.decoder", "holds [MASK]"),
        ({}, "template.encoder", "neither an encoder form"),
    ],
)
def test_a_template_without_its_slot_or_text_is_refused_naming_the_key(forms, key, says):
    with pytest.raises(ConfigError, match=re.escape(says)) as error:
        template(**forms)
    assert error.value.key == key and "\n" not in str(error.value)


@pytest.mark.parametrize("words", [{"cooking": ["food"]}, ["food", "trip"], {"cooking": [], "travel": "x"}])
def test_words_must_map_two_labels_or_more_to_words(words):
    with pytest.raises(ConfigError) as error:
        PromptTemplate.from_dict({"encoder": "{text} [MASK]", "words": words})
    assert error.value.key == "template.words"


@pytest.mark.parametrize(
    ("model", "forms", "key"),
    [
        (
            BertConfig(vocab_size=50, d_model=32, n_heads=2, d_ff=64, n_layers=1),
            {"decoder": "{text}\nIt was"},
            "template.encoder",
        ),
        (
            GPTConfig(vocab_size=50, d_model=32, n_heads=2, d_ff=64, n_layers=1),
            {"encoder": "{text} [MASK]."},
            "template.decoder",
        ),
    ],
)
def test_a_model_is_refused_a_template_without_the_form_it_reads(model, forms, key):
    settings = PromptLMSettings(template={"words": WORDS, **forms})
    with pytest.raises(ConfigError, match="cannot read") as error:
        settings.check_model(model)
    assert error.value.key == key


# ------------------------------------------------------------------------------------------------
# Filling and cutting


def test_bert_filling_cuts_the_text_and_keeps_the_template_words_and_the_slot(wordpiece):
    form = template(encoder="{text} It was [MASK].")
    encoder = PromptEncoder(wordpiece, "wordpiece", 14, form)
    ids = special_ids(wordpiece)
    long = LabeledExample("Peel the potatoes and mash them with milk and butter until smooth.", "cooking")
    short = LabeledExample("Pack a bag.", "travel")
    split = encoder.encode([long, short], np.array([0, 1]))
    tail = wordpiece.encode("It was", add_special_tokens=False).ids
    for index, example in enumerate([long, short]):
        row, _, label, slot = split[index]
        text = wordpiece.encode(example.text, add_special_tokens=False).ids
        assert row[0] == ids.cls and row[-1] == ids.sep and row[slot] == ids.mask and label == index
        assert (
            list(row[slot - len(tail) : slot]) == tail
            and list(row[slot + 1 : -1]) == wordpiece.encode(".", add_special_tokens=False).ids
        )
        kept = list(row[1 : slot - len(tail)])
        assert kept == text[: len(kept)]  # the text's beginning, never the template's words
    assert len(split[0][0]) == 14 and len(split[1][0]) < 14  # only the long text was cut, at its end


@pytest.mark.parametrize(
    ("form", "pair"),
    [("Review: {text}\nIt was", None), ("Trip: {text} Dish: {text_pair}\nSame topic?", "Mash the potatoes.")],
)
def test_a_decoder_reads_the_filled_template_as_the_whole_text_would_and_its_slot_is_the_end(bpe, form, pair):
    encoder = PromptEncoder(bpe, "bpe", 64, template(decoder=form))
    text = "Pack a light bag and a warm coat."
    row, types, _, slot = encoder.encode([LabeledExample(text, "travel", pair)], np.array([1]))[0]
    assert types is None and row[0] == bpe.token_to_id(END_OF_TEXT) and slot == len(row) - 1
    whole = form.replace("{text}", text).replace("{text_pair}", pair or "")
    assert list(row[1:]) == bpe.encode(whole, add_special_tokens=False).ids


def test_a_decoder_cuts_the_text_at_its_end_and_keeps_the_template(bpe):
    form = template(decoder="Review: {text}\nIt was")
    encoder = PromptEncoder(bpe, "bpe", 16, form)
    row, _, _, slot = encoder.encode([LabeledExample(" ".join(SENTENCES[:4]), "travel")], np.array([1]))[0]
    tail = bpe.encode("\nIt was", add_special_tokens=False).ids
    assert len(row) == 16 and slot == 15 and list(row[-len(tail) :]) == tail


def test_sentence_pairs_cut_the_longer_text_first(wordpiece):
    form = template(encoder="{text} ? [MASK] , {text_pair}")
    encoder = PromptEncoder(wordpiece, "wordpiece", 20, form)
    first, second = "Pack a bag.", " ".join(SENTENCES[:3])
    row, _, _, slot = encoder.encode([LabeledExample(first, "travel", second)], np.array([1]))[0]
    a = wordpiece.encode(first, add_special_tokens=False).ids
    assert len(row) == 20 and list(row[1 : 1 + len(a)]) == a  # the shorter text stays whole
    assert row[slot] == special_ids(wordpiece).mask


def test_a_template_that_leaves_no_room_for_the_text_is_refused(wordpiece):
    form = template(encoder="{text} " + "the night train to vienna left late " * 3 + "[MASK]")
    with pytest.raises(ConfigError, match="leaving 0 for the text") as error:
        PromptEncoder(wordpiece, "wordpiece", 16, form)
    assert error.value.key == "data.max_seq_len"


# ------------------------------------------------------------------------------------------------
# The verbalizer's words


def test_words_become_their_tokens_a_decoder_reading_them_after_a_space(wordpiece, bpe):
    bert = word_ids(wordpiece, template(encoder="{text} [MASK]"), False, ["cooking", "travel"], "topics")
    assert bert == [
        [wordpiece.encode("food", add_special_tokens=False).ids],
        [wordpiece.encode("trip", add_special_tokens=False).ids],
    ]
    gpt = word_ids(bpe, template(decoder="{text}\nTopic:"), True, ["cooking", "travel"], "topics")
    assert gpt[0] == [bpe.encode(" food", add_special_tokens=False).ids]
    newline = word_ids(bpe, template(decoder="{text}\nTopic:\n"), True, ["cooking", "travel"], "topics")
    assert newline[0] == [bpe.encode("food", add_special_tokens=False).ids]  # no space after whitespace


@pytest.mark.parametrize(
    ("words", "says"),
    [
        ({"cooking": ["food"], "sport": ["ball"]}, "names the label 'sport'"),
        ({"cooking": ["food"], "travel": ["日本"]}, "cannot spell '日本'"),
        ({"cooking": ["trip"], "travel": ["trip"]}, "start with the same piece"),
    ],
)
def test_words_must_spell_exactly_the_data_labels_and_tell_them_apart(wordpiece, words, says):
    form = PromptTemplate.from_dict({"encoder": "{text} [MASK]", "words": words})
    with pytest.raises(ConfigError, match=says) as error:
        word_ids(wordpiece, form, False, ["cooking", "travel"], "topics")
    assert error.value.key == "template.words"


def test_a_data_label_without_words_is_refused(wordpiece):
    form = template(encoder="{text} [MASK]")
    with pytest.raises(ConfigError, match="the label 'sport' of topics has no words"):
        word_ids(wordpiece, form, False, ["cooking", "sport", "travel"], "topics")


# ------------------------------------------------------------------------------------------------
# Scores against a hand computation

TINY_MODEL = {"vocab_size": 40, "d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_seq_len": 32}


def tiny_task(config_type, label_words) -> PromptLM:
    torch.manual_seed(0)
    model = {"_target_": f"lmforge.models.{config_type.__name__}", **TINY_MODEL}
    if config_type is LlamaConfig:
        model["n_kv_heads"] = 1
    form = {"encoder": "{text} [MASK]", "decoder": "{text} is", "words": {"a": ["x"], "b": ["y"]}}
    return PromptLM(model, {"template": form}, {"lr": 1e-3}, ["a", "b"], label_words).eval()


def test_bert_scores_the_first_piece_of_each_word_at_the_mask_and_sums_a_labels_words():
    # label a: words [5] and [7, 8] (scored by 7, its first piece); label b: [9, 3]
    task = tiny_task(BertConfig, [[[5], [7, 8]], [[9, 3]]])
    ids = torch.tensor([[2, 11, 12, 4, 3, 0], [2, 13, 4, 3, 0, 0]])  # [CLS] .. [MASK] [SEP] pad
    mask = (torch.arange(6) < torch.tensor([[5], [4]])).long()
    slots = torch.tensor([3, 2])
    with torch.no_grad():
        scores = task(ids, mask, slots)
        hidden = task.backbone(ids, None, mask)
        rows = torch.arange(2)
        log_probs = F.log_softmax(
            task.mlm_head(hidden[rows, slots], task.backbone.token_embedding.weight), -1
        )
    label_a = torch.log(log_probs[:, 5].exp() + log_probs[:, 7].exp())
    torch.testing.assert_close(scores, torch.stack((label_a, log_probs[:, 9]), dim=1))


@pytest.mark.parametrize("config_type", [GPTConfig, LlamaConfig])
def test_a_decoder_sums_the_log_probabilities_of_each_words_tokens_after_the_template(config_type):
    words = [[[5], [6, 7]], [[8, 9, 10]]]
    task = tiny_task(config_type, words)
    rows = [[1, 11, 12, 13], [1, 14]]  # two templates of different lengths, right-padded
    ids = torch.tensor([rows[0], rows[1] + [1, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        scores = task(ids, mask, torch.tensor([3, 1]))
        expected = []
        for row in rows:
            by_word = []
            for word in (w for listed in words for w in listed):
                full = torch.tensor([row + word[:-1]])
                log_probs = F.log_softmax(task.backbone.logits(task.backbone(full)), -1)[0]
                by_word.append(sum(log_probs[len(row) - 1 + j, token] for j, token in enumerate(word)))
            expected.append([torch.logaddexp(by_word[0], by_word[1]), by_word[2]])
    torch.testing.assert_close(scores, torch.tensor(expected))


# ------------------------------------------------------------------------------------------------
# Few-shot


def few_shot_module(tmp_path: Path, shots: int, seed: int):
    source = CsvSource(path=str(TOPICS), text_column="sentence", label_column="topic")
    tokenizer = {"kind": "wordpiece", "vocab_size": 300, "min_frequency": 1}
    dm = ClassificationDataModule(
        source,
        tokenizer,
        str(tmp_path / "cache"),
        batch_size=2,
        shots_per_class=shots,
        split_seed=seed,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    dm.prepare_data()
    return dm


def test_few_shot_draws_exactly_k_per_label_and_the_same_examples_for_the_same_seed(tmp_path):
    first = few_shot_module(tmp_path, 3, seed=1).splits
    again = few_shot_module(tmp_path, 3, seed=1).splits
    other = few_shot_module(tmp_path, 3, seed=2).splits
    labels = [example.label for example in first["train"]]
    assert labels.count("cooking") == 3 and labels.count("travel") == 3 and len(labels) == 6
    assert first["train"] == again["train"] and first["train"] != other["train"]
    larger = few_shot_module(tmp_path, 5, seed=1).splits
    assert set(first["train"]) <= set(larger["train"])  # a larger K keeps the smaller draw
    assert first["val"] == larger["val"] and first["test"] == larger["test"]  # K leaves them as they are


def test_more_shots_than_a_label_has_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="holds 12 examples of the label 'cooking'") as error:
        few_shot_module(tmp_path, 13, seed=0)
    assert error.value.key == "data.shots_per_class"


# ------------------------------------------------------------------------------------------------
# Training with every tuning method, and zero-shot scoring
