"""The debian_docs corpus on fixtures in the real formats (tests/fixtures/debian, see build_fixtures.py)."""

import shutil
import sys
from pathlib import Path

import pytest

from lmforge.data.corpus import DebianDocsCorpus
from lmforge.data.corpus.debian import PARTS
from lmforge.data.corpus.debian_formats.gcide import decode_number, read_index
from lmforge.errors import ConfigError

DEBIAN = Path(__file__).resolve().parent / "fixtures" / "debian"

EXPECTED = {
    "linux_doc": [
        [
            "The lantern driver turns lights on at dusk.",
            "It reads the clock once a minute.",
            "The driver never changes the clock itself.",
            "Load the module like this:",
            "The brightness option takes a number from one to five.",
            "The colour option picks warm or cold light.",
            "How strong the light is, from one to five.",
        ],
        [
            "The ferry leaves the north pier every hour.",
            "On windy days it may wait in the harbour until the wind drops.",
            "Passengers should arrive early.",
            "Tickets are sold on board.",
        ],
    ],
    "python_doc": [
        [
            "This module boils water for tea.",
            "See boil for the details and PEP 8 for the style.",
            "Use pour to pour and steep to wait.",
            "Heat litres of water until it boils.",
            "The kettle whistles when whistle is true.",
            "The tea module, which steeps the leaves.",
        ]
    ],
    "gcide": [
        [
            "A case with clear sides that shelters a light from the wind.",
            "A small tower on a roof, open at the sides, that lets in light and air.",
        ],
        ["To carry over water in a boat; as, to ferry goods across a river."],
        ["a metal pot for boiling water, with a lid and a spout"],
        ["The quality of being naive; simple trust in the good faith of others."],
    ],
    "kjv": [
        ["The lamp was lit before dawn.", "The keeper then walked to the GATE and waited."],
        ["The rain fell on the hills for three days."],
        ["A traveller asked the way to the market, and a child showed him."],
    ],
    "web": [
        ["In the evening, the morning bell rang twice.", "He said, “Wait here & rest.”"],
        ["Goodbye to all of you."],
    ],
    "austen": [
        ["The light turned all night.", "Nobody slept on the island."],
        ["The apples were late that year, and Mr. Hale worried.", "He walked the rows each morning."],
        ['"Will they ripen?" asked his daughter.', '"Soon," he said.'],
    ],
}
READERS = {"kjv": "pysword", "web": "pysword", "austen": "rdata"}


def needs_reader(part: str) -> None:
    if part in READERS:
        pytest.importorskip(
            READERS[part], reason=f"the {part} part needs {READERS[part]} (`make data-debian`)"
        )


@pytest.mark.parametrize(
    ("digits", "value"),
    [("A", 0), ("Z", 25), ("a", 26), ("0", 52), ("+", 62), ("/", 63), ("BA", 64), ("Fz", 371), ("BAA", 4096)],
)
def test_dictd_base64_numbers(digits, value):
    assert decode_number(digits) == value


def test_gcide_index_skips_the_database_entries_and_shared_headwords():
    spans = read_index(DEBIAN / "usr/share/dictd/gcide.index")
    assert len(spans) == 4  # 6 entries under 9 headwords, 2 of them about the database
    assert spans == sorted(spans) and spans[0][0] > 0


@pytest.mark.parametrize("part", PARTS)
def test_each_part_reads_clean_sentences(part):
    needs_reader(part)
    corpus = DebianDocsCorpus(root=str(DEBIAN), parts=[part])
    corpus.check()
    assert list(corpus.documents()) == EXPECTED[part]


def test_all_parts_in_order_are_deterministic_and_capped():
    for reader in set(READERS.values()):
        pytest.importorskip(reader, reason=f"{reader} is not installed (`make data-debian`)")
    corpus = DebianDocsCorpus(root=str(DEBIAN))
    documents = list(corpus.documents())
    assert documents == [document for part in PARTS for document in EXPECTED[part]]
    assert list(corpus.documents()) == documents
    assert list(DebianDocsCorpus(root=str(DEBIAN), max_documents=3).documents()) == documents[:3]


def test_check_names_make_data_debian_when_the_root_is_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist .* run `make data-debian`") as error:
        DebianDocsCorpus(root=str(tmp_path / "debian")).check()
    assert error.value.key == "data.corpus.root"


def test_check_names_the_missing_part(tmp_path):
    shutil.copytree(DEBIAN / "usr/share/dictd", tmp_path / "usr/share/dictd")
    DebianDocsCorpus(root=str(tmp_path), parts=["gcide"]).check()
    with pytest.raises(ConfigError, match=r"python3.11/html/_sources is missing \(part python_doc") as error:
        DebianDocsCorpus(root=str(tmp_path), parts=["gcide", "python_doc"]).check()
    assert error.value.key == "data.corpus.root"


@pytest.mark.parametrize(("parts", "pattern"), [([], "is empty"), (["kjv", "quran"], "no part named quran")])
def test_check_refuses_empty_and_unknown_parts(parts, pattern):
    with pytest.raises(ConfigError, match=pattern):
        DebianDocsCorpus(root=str(DEBIAN), parts=parts).check()


def test_check_says_how_to_install_a_missing_reader(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdata", None)  # find_spec then reports it missing
    with pytest.raises(
        ConfigError, match=r"needs the rdata package: run `make data-debian` \(or `pip install"
    ):
        DebianDocsCorpus(root=str(DEBIAN), parts=["austen"]).check()


def test_settings_change_when_a_source_file_changes(tmp_path):
    shutil.copytree(DEBIAN / "usr/share/doc", tmp_path / "usr/share/doc")
    corpus = DebianDocsCorpus(root=str(tmp_path), parts=["linux_doc", "python_doc"])
    before = corpus.settings()
    assert before["sources"]["linux_doc"]["files"] == 2  # translations/ and devicetree/ are not read
    assert corpus.settings() == before
    page = tmp_path / "usr/share/doc/python3.11/html/_sources/library/kettle.rst.txt"
    page.write_text(page.read_text() + "\nThe lid must stay closed while it boils.\n")
    after = corpus.settings()
    assert after["sources"]["python_doc"] != before["sources"]["python_doc"]
    assert after["sources"]["linux_doc"] == before["sources"]["linux_doc"]
    assert DebianDocsCorpus(root=str(tmp_path), parts=["python_doc"]).settings() != before
