"""Labeled sets for fine-tuning from the user's files (CSV / TSV / JSONL): reading, splits, labels,
encoding and batches. The prepared sets of fetched downloads: tests/unit/datasets/test_labeled_sets.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lmforge.data.labeled import ClassificationDataModule, CsvSource, JsonlSource, LabeledExample
from lmforge.data.labeled.encoding import fit_pair
from lmforge.data.labeled.splits import grouped_split, stratified_split
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.tokenizers import CLS, END_OF_TEXT, PAD, SEP
from tests.conftest import FIXTURES

FILES = FIXTURES / "labeled" / "files"


def datamodule(source, tmp_path: Path, kind: str = "wordpiece", **settings) -> ClassificationDataModule:
    settings = {"batch_size": 2, "max_seq_len": 32, **settings}
    tokenizer = {"kind": kind, "vocab_size": 300, "min_frequency": 1}
    return ClassificationDataModule(source, tokenizer, cache_dir=str(tmp_path / "cache"), **settings)


def reviews(**settings) -> CsvSource:
    return CsvSource(path=str(FILES / "reviews.csv"), text_column="review", label_column="stars", **settings)


def questions() -> JsonlSource:
    return JsonlSource(
        path=str(FILES / "questions.jsonl"),
        text_column="question",
        text_pair_column="answer",
        label_column="label",
    )


def write_csv(path: Path, rows: int, labels: tuple[str, ...] = ("a", "b", "c")) -> Path:
    lines = ["text,label"] + [
        f"example sentence number {i} about {labels[i % 3]},{labels[i % 3]}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------
# The user's files


def test_csv_tsv_and_jsonl_files():
    examples = reviews().read()
    assert len(examples) == 12
    assert examples[0] == LabeledExample(
        "The soup was hot, the bread was fresh and the staff were kind.", "10"
    )
    tsv = CsvSource(path=str(FILES / "reviews.tsv"), text_column="review", label_column="stars")
    tsv.check()
    assert [e.label for e in tsv.read()] == ["10", "1", "3", "10", "1", "3"]  # a tab by the suffix
    pairs = questions().read()
    assert len(pairs) == 8  # the blank line is no example
    assert pairs[0] == LabeledExample(
        "When does the bakery open?", "True", text_pair="The bakery opens at seven every morning."
    )


def test_csv_errors_name_the_key_to_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"data.source.path=.*missing.csv does not exist") as error:
        CsvSource(path=str(tmp_path / "missing.csv")).check()
    assert error.value.key == "data.source.path"
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match=r"empty\.csv is empty"):
        CsvSource(path=str(tmp_path / "empty.csv")).check()
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(ConfigError, match=r"header\.csv holds no examples"):
        CsvSource(path=str(tmp_path / "header.csv")).read()
    with pytest.raises(ConfigError, match=r"has no column 'text' \(columns: id, review, stars\)") as error:
        CsvSource(path=str(FILES / "reviews.csv"), label_column="stars").check()
    assert error.value.key == "data.source.text_column"
    (tmp_path / "blank.csv").write_text('text,label\nfine,a\n"  ",b\n')
    with pytest.raises(ConfigError, match=r"blank.csv:3 has an empty text in column 'text'") as error:
        CsvSource(path=str(tmp_path / "blank.csv")).read()
    assert error.value.key == "data.source.text_column"
    with pytest.raises(ConfigError, match="must be one character"):
        reviews(delimiter=";;").check()


def test_jsonl_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine", "label": 1}\n{"text": oops}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2 is not valid JSON"):
        JsonlSource(path=str(tmp_path / "bad.jsonl")).read()
    (tmp_path / "fields.jsonl").write_text('{"text": "fine", "label": 1}\n{"text": "no label"}\n')
    with pytest.raises(
        ConfigError, match=r"fields.jsonl:2 has no column 'label' \(its columns: text\)"
    ) as error:
        JsonlSource(path=str(tmp_path / "fields.jsonl")).read()
    assert error.value.key == "data.source.path"  # the line is malformed, not the setting
    with pytest.raises(ConfigError, match="has no column 'review'") as error:
        JsonlSource(path=str(tmp_path / "fields.jsonl"), text_column="review").check()
    assert error.value.key == "data.source.text_column"


def test_a_group_column_keeps_each_group_in_one_drawn_split(tmp_path):
    path = tmp_path / "grouped.csv"
    rows = [f"sentence {i} of story {i % 5},{'ab'[i % 2]},story {i % 5}" for i in range(40)]
    path.write_text("text,label,story\n" + "\n".join(rows) + "\n")
    dm = datamodule(CsvSource(path=str(path), group_column="story"), tmp_path, val_fraction=0.2)
    dm.prepare_data()
    stories = {split: {e.group for e in examples} for split, examples in dm.splits.items()}
    assert all(stories.values()) and sum(map(len, stories.values())) == 5  # no story in two splits
    path.write_text("text,label,story\na text,a,\n")
    with pytest.raises(ConfigError, match=r"grouped.csv:2 has an empty group in column 'story'") as error:
        CsvSource(path=str(path), group_column="story").read()
    assert error.value.key == "data.source.group_column"


def test_an_unknown_label_in_the_test_file_is_named_with_the_file(tmp_path):
    dm = datamodule(reviews(test_path=str(FILES / "reviews_test.csv")), tmp_path)
    with pytest.raises(ConfigError, match=r"test split \(.*reviews_test.csv\) has the label '7'") as error:
        dm.prepare_data()
    assert error.value.key == "data.source.test_path"


def test_given_val_and_test_files_are_used_as_they_are(tmp_path):
    write_csv(tmp_path / "test.csv", 3)
    dm = datamodule(
        CsvSource(path=str(write_csv(tmp_path / "train.csv", 30)), test_path=str(tmp_path / "test.csv")),
        tmp_path,
    )
    dm.prepare_data()
    assert [e.text for e in dm.splits["test"]] == [
        e.text for e in CsvSource(path=str(tmp_path / "test.csv")).read()
    ]
    assert len(dm.splits["val"]) == 3 and len(dm.splits["train"]) == 27  # val drawn from train.csv


# ------------------------------------------------------------------------------------------------
# Splits


def test_splits_depend_on_split_seed_only_and_are_stratified(tmp_path):
    source = CsvSource(path=str(write_csv(tmp_path / "set.csv", 60)))

    def texts(dm: ClassificationDataModule) -> dict[str, list[str]]:
        dm.prepare_data()
        return {split: [e.text for e in examples] for split, examples in dm.splits.items()}

    first = texts(datamodule(source, tmp_path, seed=1))
    assert texts(datamodule(source, tmp_path, seed=2)) == first
    assert texts(datamodule(source, tmp_path, split_seed=7)) != first
    assert sorted(text for split in first.values() for text in split) == sorted(
        e.text for e in source.read()
    )  # disjoint and complete
    dm = datamodule(source, tmp_path)
    dm.prepare_data()
    for split, size in (("train", 16), ("val", 2), ("test", 2)):
        assert Counter(e.label for e in dm.splits[split]) == {"a": size, "b": size, "c": size}


def test_stratified_split_keeps_a_training_example_of_every_label():
    labels = ["a"] * 40 + ["b"] * 3 + ["c"]
    splits = stratified_split(labels, {"val": 0.2, "test": 0.2}, seed=0)
    assert {labels[i] for i in splits["train"]} == {"a", "b", "c"}
    assert sorted(np.concatenate(list(splits.values()))) == list(range(len(labels)))
    small = stratified_split(["a", "b", "a", "b"], {"val": 0.1}, seed=0)
    assert len(small["val"]) == 1 and len(small["train"]) == 3


def test_grouped_split_refuses_too_few_groups():
    splits = grouped_split(["x"] * 5 + ["y"] * 5, {"val": 0.3}, seed=0)
    assert len(splits["train"]) == len(splits["val"]) == 5
    with pytest.raises(ConfigError, match="holds 2 groups"):
        grouped_split(["x"] * 5 + ["y"] * 5, {"val": 0.3, "test": 0.3}, seed=0)


# ------------------------------------------------------------------------------------------------
# Labels, tokenizer, encoding, batches


def test_label_names_are_sorted_numbers_first(tmp_path):
    dm = datamodule(reviews(), tmp_path)
    assert dm.label_names == ["1", "3", "10"]
    assert dm.num_labels == 3


def test_bert_pairs_get_segment_ids_and_right_padding(tmp_path):
    dm = datamodule(questions(), tmp_path, batch_size=4, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    vocab = dm.tokenizer.get_vocab()
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(t.dtype == torch.int64 for t in batch.values())
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape[1] == lengths.max()
    for ids, types, mask, length in zip(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], lengths, strict=True
    ):
        seps = (ids[:length] == vocab[SEP]).nonzero().flatten().tolist()
        assert ids[0] == vocab[CLS] and len(seps) == 2 and seps[-1] == length - 1
        assert (types[: seps[0] + 1] == 0).all() and (types[seps[0] + 1 : length] == 1).all()
        assert (
            (ids[length:] == vocab[PAD]).all() and (types[length:] == 0).all() and (mask[length:] == 0).all()
        )


def test_decoder_examples_end_with_end_of_text(tmp_path):
    dm = datamodule(questions(), tmp_path, kind="bpe", batch_size=4, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    eot = dm.tokenizer.token_to_id(END_OF_TEXT)
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    for ids, length in zip(batch["input_ids"], batch["attention_mask"].sum(dim=1), strict=True):
        assert ids[length - 1] == eot and (ids[:length] == eot).sum() == 2  # A <eot> B <eot>
        assert (ids[length:] == eot).all()  # padding


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_truncation_keeps_the_final_special_token(kind, tmp_path):
    dm = datamodule(questions(), tmp_path, kind=kind, max_seq_len=8)
    dm.setup()
    last = dm.tokenizer.token_to_id(SEP if kind == "wordpiece" else END_OF_TEXT)
    split = dm.datasets["train"]
    assert split.lengths().max() == 8
    for index in range(len(split)):
        ids, _, _ = split[index]
        assert ids[-1] == last and (ids == last).sum() == 2  # both texts kept a part


@pytest.mark.parametrize(
    ("first", "second", "budget", "kept"),
    [
        (3, 4, 10, (3, 4)),
        (3, 100, 50, (3, 47)),
        (100, 3, 50, (47, 3)),
        (30, 41, 50, (25, 25)),
        (40, 40, 7, (3, 4)),
    ],
)
def test_fit_pair_trims_the_longer_text_first(first, second, budget, kept):
    assert fit_pair(first, second, budget) == kept


def test_training_batches_are_full_and_shuffled_by_the_seed(tmp_path):
    source = CsvSource(path=str(write_csv(tmp_path / "set.csv", 60)))

    def batches(seed: int) -> list[list[list[int]]]:
        dm = datamodule(source, tmp_path, batch_size=8, seed=seed)
        dm.setup()
        loaded = list(dm.train_dataloader())
        assert len(loaded) == 48 // 8 and all(len(b["labels"]) == 8 for b in loaded)
        return [b["input_ids"].tolist() for b in loaded]

    assert batches(1) == batches(1)
    assert batches(1) != batches(2)


def test_state_dict_and_restore_rebuild_the_labels_and_the_tokenizer(tmp_path):
    dm = datamodule(reviews(), tmp_path / "a")
    dm.setup()
    state = dm.state_dict()
    assert state["label_names"] == ["1", "3", "10"] and state["tokenizer"] == dm.tokenizer.to_str()
    ckpt = tmp_path / "last.ckpt"
    torch.save({"ClassificationDataModule": state}, ckpt)

    restored = datamodule(reviews(), tmp_path / "b")
    restored.restore(read_checkpoint(ckpt, weights=False), str(ckpt))
    restored.setup()
    assert restored.label_names == dm.label_names
    assert restored.tokenizer.to_str() == dm.tokenizer.to_str()
    assert not (tmp_path / "b" / "cache").exists()  # no tokenizer was trained
    assert (restored.datasets["val"].ids == dm.datasets["val"].ids).all()

    resumed = datamodule(reviews(), tmp_path / "c")
    resumed.load_state_dict(state)
    assert resumed.label_names == dm.label_names and resumed.tokenizer.to_str() == dm.tokenizer.to_str()
    with pytest.raises(ConfigError, match="the checkpoint's labels"):
        resumed.load_state_dict({**state, "label_names": ["1", "10", "3"]})

    torch.save({"ClassificationDataModule": {**state, "label_names": ["1", "3"]}}, ckpt)
    narrow = datamodule(reviews(), tmp_path / "d")
    narrow.restore(read_checkpoint(ckpt, weights=False), str(ckpt))
    with pytest.raises(ConfigError, match=r"has the label '10', which the model of .*last.ckpt was not"):
        narrow.prepare_data()
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(ConfigError, match="holds no label names and tokenizer") as error:
        datamodule(reviews(), tmp_path / "e").restore(read_checkpoint(ckpt, weights=False), str(ckpt))
    assert error.value.key == "ckpt_path"


def test_use_tokenizer_checks_its_kind(tmp_path):
    bpe = TokenizerSettings(kind="bpe", vocab_size=300, min_frequency=1).train(["a few words of text"])
    with pytest.raises(ConfigError, match="is a bpe tokenizer, but this model reads wordpiece") as error:
        datamodule(reviews(), tmp_path).use_tokenizer(bpe)
    assert error.value.key == "model.init_from"
    dm = datamodule(reviews(), tmp_path, kind="bpe")
    dm.use_tokenizer(bpe)
    dm.setup()
    assert dm.vocab_size == bpe.get_vocab_size() and not (tmp_path / "cache").exists()


def test_a_tokenizer_file_is_used_as_it_is(tmp_path):
    trained = datamodule(reviews(), tmp_path / "a")
    trained.prepare_data()
    trained.tokenizer.save(str(tmp_path / "tokenizer.json"))
    dm = ClassificationDataModule(
        reviews(),
        {"kind": "wordpiece", "path": str(tmp_path / "tokenizer.json")},
        str(tmp_path / "b"),
        batch_size=2,
    )
    dm.setup()
    assert dm.tokenizer.to_str() == trained.tokenizer.to_str() and not (tmp_path / "b").exists()


def test_tokenizer_is_trained_on_the_training_split_and_cached(tmp_path):
    dm = datamodule(reviews(), tmp_path)
    dm.prepare_data()
    cached = list((tmp_path / "cache").glob("csv-*/wordpiece-*/tokenizer.json"))
    assert len(cached) == 1
    again = datamodule(reviews(), tmp_path)
    again.prepare_data()
    assert again.tokenizer.to_str() == dm.tokenizer.to_str()
    settings = json.loads((cached[0].parent / "settings.json").read_text())
    assert settings["split"] == {"val_fraction": 0.1, "test_fraction": 0.1, "seed": 0}


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"batch_size": 64}, "data.batch_size"),
        ({"val_fraction": 0.0}, "data.val_fraction"),
        ({"test_fraction": 1.0}, "data.test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "data.test_fraction"),
        ({"max_seq_len": 4}, "data.max_seq_len"),
    ],
)
def test_settings_errors(settings, key, tmp_path):
    with pytest.raises(ConfigError) as error:
        datamodule(reviews(), tmp_path, **settings).prepare_data()
    assert error.value.key == key


def test_no_test_split_when_test_fraction_is_zero(tmp_path):
    dm = datamodule(reviews(), tmp_path, test_fraction=0.0)
    dm.setup()
    assert set(dm.datasets) == {"train", "val"}
    with pytest.raises(ConfigError, match="there is no test split"):
        dm.test_dataloader()


def test_a_single_label_is_refused(tmp_path):
    (tmp_path / "one.csv").write_text("text,label\n" + "".join(f"text {i},same\n" for i in range(10)))
    with pytest.raises(ConfigError, match="holds one label only"):
        datamodule(CsvSource(path=str(tmp_path / "one.csv")), tmp_path).prepare_data()


def test_the_shared_base_needs_a_source(make_cfg):
    cfg = make_cfg("data=labeled", tiny=False)
    assert OmegaConf.missing_keys(cfg) == {"data.source"} and cfg.objective.kind == "classify"
