"""Corpus sources: the standard library's documentation and the user's own files, and their errors."""

import json
import sys

import pytest

from lmforge.data.corpus import StdlibCorpus, TextFilesCorpus
from lmforge.errors import ConfigError
from tests.conftest import CORPUS


def test_text_files_read_txt_blocks_and_jsonl_records():
    corpus = TextFilesCorpus([str(CORPUS / "workshop.txt"), str(CORPUS / "notes.jsonl")])
    corpus.check()
    documents = list(corpus.documents())
    assert len(documents) == 22 + 8
    assert documents[0][0] == "A bicycle chain needs oil every few hundred kilometres."
    assert len(documents[0]) == 4
    assert documents[22][-1] == "Phones must be switched to silent there."


def test_globs_and_one_document_per_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_text("First part. Second part.\n\nThird part here.\n")
    corpus = TextFilesCorpus(str(tmp_path / "*.txt"), txt_documents="file")
    assert [len(d) for d in corpus.documents()] == [3, 3]


def test_one_sentence_per_line_is_read_as_written(tmp_path):
    path = tmp_path / "prepared.txt"
    path.write_text("Dr. Hale came. He sat\nDown here.\n\n\n  \nA second document.\n\n")
    assert list(TextFilesCorpus(str(path)).documents()) == [
        ["Dr. Hale came.", "He sat Down here."],
        ["A second document."],
    ]
    lines = TextFilesCorpus(str(path), txt_sentences="line")
    assert list(lines.documents()) == [["Dr. Hale came. He sat", "Down here."], ["A second document."]]
    assert list(TextFilesCorpus(str(path), txt_sentences="line", max_documents=1).documents()) == [
        ["Dr. Hale came. He sat", "Down here."]
    ]
    with pytest.raises(ConfigError, match="txt_sentences='word' is not one of split, line"):
        TextFilesCorpus(str(path), txt_sentences="word").check()


def test_settings_change_when_a_file_changes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("One sentence. Another one.\n")
    corpus = TextFilesCorpus(str(path))
    before = corpus.settings()
    path.write_text("One sentence. Another one, now longer.\n")
    assert corpus.settings() != before


def test_repeated_documents_are_dropped(tmp_path):
    (tmp_path / "a.txt").write_text("Same text here. Twice.\n\nSame text here. Twice.\n\nOther text. Yes.\n")
    assert len(list(TextFilesCorpus(str(tmp_path / "a.txt")).unique_documents())) == 2


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("missing.txt", None, "matches no file"),
        ("empty.txt", "", "is empty"),
        ("data.csv", "a,b\n", "neither .txt nor .jsonl"),
    ],
)
def test_check_refuses_missing_empty_and_unknown_files(tmp_path, name, content, pattern):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError, match=pattern):
        TextFilesCorpus(str(tmp_path / name)).check()


def test_non_utf8_file_names_its_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Good line.\nCaf\xe9 au lait.\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.txt is not UTF-8 \(byte 14, line 2\)"):
        list(TextFilesCorpus(str(path)).documents())


def test_jsonl_errors_name_the_line_and_the_field(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"text": "Fine."}) + "\n" + json.dumps({"body": "No text key."}) + "\n")
    with pytest.raises(ConfigError, match=r"records.jsonl:2 has no 'text' field \(found: body\)"):
        list(TextFilesCorpus(str(path)).documents())
    path.write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"records.jsonl:1 is not valid JSON"):
        list(TextFilesCorpus(str(path)).documents())


def test_stdlib_corpus_reads_docstrings_without_importing_modules():
    corpus = StdlibCorpus(topics=False, max_documents=400)
    corpus.check()
    before = set(sys.modules)
    documents = list(corpus.documents())
    imported = {name for name in set(sys.modules) - before if not name.startswith(("lmforge", "rich"))}
    assert len(documents) == 400
    assert not imported, f"reading the corpus imported {sorted(imported)[:5]}"
    assert sum(len(d) for d in documents) > 400


SOURCE = '''"""Tools for the shed. They are kept in order."""


def sharpen(blade):
    """Sharpen a blade on the stone. Keep the angle steady."""


class Saw:
    """A saw for wood. Its teeth are set."""

    def cut(self):
        """Cut along the line. Let the saw do the work."""
'''


def test_a_module_is_one_document_in_source_order(tmp_path):
    (tmp_path / "shed.py").write_text(SOURCE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shed.py").write_text(SOURCE)
    corpus = StdlibCorpus(topics=False, min_docstring_chars=10, root=str(tmp_path), document="module")
    module = list(corpus.documents())
    assert module == [
        [
            "Tools for the shed.",
            "They are kept in order.",
            "Sharpen a blade on the stone.",
            "Keep the angle steady.",
            "A saw for wood.",
            "Its teeth are set.",
            "Cut along the line.",
            "Let the saw do the work.",
        ]
    ]
    per_docstring = StdlibCorpus(
        topics=False, min_docstring_chars=10, root=str(tmp_path), document="docstring"
    )
    assert [len(d) for d in per_docstring.documents()] == [2, 2, 2, 2]


def test_unknown_document_unit_is_refused():
    with pytest.raises(ConfigError, match=r"data.corpus.document='page'"):
        StdlibCorpus(document="page").check()


def test_stdlib_topics_are_prose():
    documents = list(StdlibCorpus(docstrings=False).documents())
    assert len(documents) > 50
    sentences = [s for d in documents for s in d]
    assert not any(s.startswith(">>>") for s in sentences)
    assert sum(s.endswith((".", ":", "?", "!")) for s in sentences) > 0.8 * len(sentences)
