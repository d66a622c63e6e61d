"""Configs written before the download readers left the library still build: a checkpoint's saved data
settings name TrecSource, DebianDocsCorpus, ...; they become the generic readers of the prepared files."""

import logging

import pytest
from omegaconf import OmegaConf

from lmforge.data.moved import upgrade
from tests.conftest import compose_config

OLD = {  # old reader: (its settings under the data folder, the preset that replaced it, settings it keeps)
    "TrecSource": ({"root": "finetune", "granularity": "fine"}, "trec", {"granularity": "fine"}),
    "MovieSentimentSource": ({"root": "finetune"}, "movie_sentiment", {}),
    "SmsSpamSource": ({"root": "finetune"}, "sms_spam", {}),
    "WordNetSupersenseSource": ({"root": "finetune", "lemma": True}, "wordnet_supersense", {"lemma": True}),
    "BibleParaphraseSource": (
        {"root": "debian", "cache_dir": "cache", "negatives_from": "bible"},
        "bible_paraphrase",
        {"negatives_from": "bible"},
    ),
}


@pytest.mark.parametrize("name", OLD)
def test_an_old_labeled_reader_becomes_its_presets_reader(name, tmp_path, caplog):
    settings, preset, kept = OLD[name]
    cfg = compose_config([f"data={preset}", *(f"data.source.{k}={v}" for k, v in kept.items())], tmp_path)
    under = {key: f"{cfg.paths.data_dir}/{settings[key]}" for key in ("root", "cache_dir") if key in settings}
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        node = upgrade({"_target_": f"lmforge.data.labeled.{name}", **settings, **under})
    assert node == OmegaConf.to_container(cfg.data.source, resolve=True)
    assert len(caplog.records) == 1 and f"{name} is no longer part of lmforge" in caplog.text


def test_the_old_debian_corpus_becomes_the_prepared_parts(tmp_path):
    cfg = compose_config(["data=debian_docs", "data.corpus.parts=[kjv]"], tmp_path)
    root = f"{cfg.paths.data_dir}/debian"
    node = upgrade({"_target_": "lmforge.data.corpus.DebianDocsCorpus", "root": root, "parts": ["kjv"]})
    assert node == OmegaConf.to_container(cfg.data.corpus, resolve=True)


def test_a_current_reader_is_left_as_it_is():
    node = {"_target_": "lmforge.data.labeled.CsvSource", "path": "x.csv"}
    assert upgrade(node) is node
