"""The debian_docs corpus: its prepare scripts (datasets/debian_docs, datasets/bible) on fixtures in the
real formats (tests/fixtures/debian, see build_fixtures.py), read back by the preset's PreparedCorpus."""

import importlib
import sys
from pathlib import Path

import pytest

from lmforge.data.corpus import PreparedCorpus
from lmforge.errors import ConfigError
from tests.conftest import FIXTURES, prepare_script

DEBIAN = FIXTURES / "debian"
DEBIAN_DOCS = prepare_script("debian_docs")
BIBLE = prepare_script("bible")
PARTS = ["linux_doc", "python_doc", "gcide", "kjv", "web", "austen"]  # the preset's order

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


def prepare(out: Path) -> list[int]:
    """The exit statuses of the two scripts that write the corpus, as `make data-debian` runs them."""
    debian = ["--debian", str(DEBIAN), "--out", str(out)]
    return [DEBIAN_DOCS.run(DEBIAN_DOCS.main, debian), BIBLE.run(BIBLE.main, ["text", *debian])]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for reader in ("pysword", "rdata"):
        pytest.importorskip(reader, reason=f"the prepare scripts need {reader} (`make data-debian`)")
    out = tmp_path_factory.mktemp("debian") / "text"
    assert prepare(out) == [0, 0]
    return out


def corpus(root: Path, **settings) -> PreparedCorpus:
    return PreparedCorpus(root=str(root), **{"parts": PARTS, "prepared_by": "make data-debian", **settings})


@pytest.mark.parametrize(
    ("digits", "value"),
    [("A", 0), ("Z", 25), ("a", 26), ("0", 52), ("+", 62), ("/", 63), ("BA", 64), ("Fz", 371), ("BAA", 4096)],
)
def test_dictd_base64_numbers(digits, value):
    assert importlib.import_module("formats.dictd").decode_number(digits) == value


def test_gcide_index_skips_the_database_entries_and_shared_headwords():
    spans = importlib.import_module("formats.dictd").read_index(DEBIAN / "usr/share/dictd/gcide.index")
    assert len(spans) == 4  # 6 entries under 9 headwords, 2 of them about the database
    assert spans == sorted(spans) and spans[0][0] > 0


def test_linux_doc_leaves_out_translations_and_devicetree():
    files = DEBIAN_DOCS.documentation_files(DEBIAN, "linux_doc")
    assert [path.name for path in files] == ["lanterns.rst.gz", "ferry.txt.gz"]


@pytest.mark.parametrize("part", PARTS)
def test_each_part_reads_clean_sentences(part, prepared):
    one = corpus(prepared, parts=[part])
    one.check()
    assert list(one.documents()) == EXPECTED[part]


def test_all_parts_in_order_are_deterministic_and_capped(prepared):
    documents = list(corpus(prepared).documents())
    assert documents == [document for part in PARTS for document in EXPECTED[part]]
    assert list(corpus(prepared).documents()) == documents
    assert list(corpus(prepared, max_documents=3).documents()) == documents[:3]


def test_preparing_again_keeps_the_files_and_says_so(prepared, capsys):
    before = {path.name: path.stat().st_mtime_ns for path in prepared.glob("*.txt")}
    assert sorted(before) == sorted(f"{part}.txt" for part in PARTS)
    assert prepare(prepared) == [0, 0]
    assert capsys.readouterr().out.count("is already prepared") == len(PARTS)
    assert {path.name: path.stat().st_mtime_ns for path in prepared.glob("*.txt")} == before


def test_a_missing_package_stops_the_script_with_one_line(tmp_path, capsys):
    argv = ["--debian", str(tmp_path), "--out", str(tmp_path / "text"), "--parts", "gcide"]
    assert DEBIAN_DOCS.run(DEBIAN_DOCS.main, argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "gcide.dict.dz is missing (Debian package dict-gcide): run `bash scripts/fetch_debian.sh" in error
    assert not (tmp_path / "text").exists()
    assert BIBLE.run(BIBLE.main, ["text", "--debian", str(tmp_path), "--out", str(tmp_path / "text")]) == 2
    assert "holds no SWORD module engKJV2006eb" in capsys.readouterr().err


def test_a_missing_reader_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "rdata", None)  # find_spec then reports it missing
    argv = ["--debian", str(DEBIAN), "--out", str(tmp_path), "--parts", "austen"]
    assert DEBIAN_DOCS.run(DEBIAN_DOCS.main, argv) == 2
    assert "needs the rdata package: pip install -e '.[debian]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing half-written is left


def test_the_corpus_names_make_data_debian_when_nothing_is_prepared(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no prepared text .* run `make data-debian`") as error:
        corpus(tmp_path / "text").check()
    assert error.value.key == "data.corpus.root"


@pytest.mark.parametrize(
    ("parts", "pattern"),
    [
        ([], "is empty: choose from gcide, kjv"),
        (["kjv", "quran"], r"holds no part quran \(prepared: gcide, kjv\)"),
    ],
)
def test_the_corpus_refuses_empty_and_unknown_parts(parts, pattern, tmp_path):
    for part in ("gcide", "kjv"):
        (tmp_path / f"{part}.txt").write_text("One sentence here.\n\n")
    with pytest.raises(ConfigError, match=pattern) as error:
        corpus(tmp_path, parts=parts).check()
    assert error.value.key == "data.corpus.parts"
