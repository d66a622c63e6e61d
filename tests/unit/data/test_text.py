"""Sentence splitting and the clean-up of reStructuredText prose."""

from lmforge.data.text import document_sentences, paragraphs, rest_prose, split_sentences


def test_splits_on_sentence_ends():
    text = "The cat sat. It was warm! Was it happy? Yes."
    assert split_sentences(text) == ["The cat sat.", "It was warm!", "Was it happy?", "Yes."]


def test_keeps_abbreviations_initials_and_numbers_inside_sentences():
    text = "Use a tool, e.g. Ruff, to check it. J. Smith wrote version 3.11 in 2022. Done."
    assert split_sentences(text) == [
        "Use a tool, e.g. Ruff, to check it.",
        "J. Smith wrote version 3.11 in 2022.",
        "Done.",
    ]


def test_does_not_split_before_lowercase():
    assert split_sentences("Call foo. bar is next.") == ["Call foo. bar is next."]


def test_closing_quotes_stay_with_their_sentence():
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_paragraphs_and_documents():
    text = "One line\ncontinues here.\n\n  \nSecond paragraph. Two sentences."
    assert paragraphs(text) == ["One line continues here.", "Second paragraph. Two sentences."]
    assert document_sentences(text) == ["One line continues here.", "Second paragraph.", "Two sentences."]


def test_rest_prose_drops_code_headings_short_lines_and_markup():
    docstring = """Title of the section
********************

Serialize ``obj`` to a :class:`str` using `the spec <https://example.org>`_ rules.

Example::

    >>> dumps([1, 2])
    '[1, 2]'

    more code here

The *emphasised* word stays, as does text after the literal block.

>>> print("a doctest")
a doctest

f(x, y)
"""
    assert rest_prose(docstring) == [
        "Serialize obj to a str using the spec rules.",
        "The emphasised word stays, as does text after the literal block.",
    ]


def test_rest_prose_keeps_indented_definition_bodies():
    text = "object.__len__(self)\n\n   Called to implement the built-in function len().\n"
    assert rest_prose(text) == ["Called to implement the built-in function len()."]
