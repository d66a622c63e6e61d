"""From raw text to documents: paragraphs, reStructuredText clean-up, sentence splitting."""

from __future__ import annotations

import re

# Inline reST markup, replaced by its visible text.
_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)*:`([^`<]*?)\s*(?:<[^>]*>)?`")  # :mod:`json`, :ref:`t <x>`
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_{1,2}")  # `text <https://...>`_
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"`([^`]+)`_{0,2}")
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}(?=\S)([^*]+?)(?<=\S)\*{1,2}(?![\w*])")
_UNDERLINE = re.compile(r"^\s*([=\-~*^\"#+`:.'_])\1{2,}\s*$")
_TABLE_LINE = re.compile(r"^\s*([+|])")
_SPACE = re.compile(r"\s+")

# A sentence ends at . ! or ? (maybe followed by closing quotes or brackets) and whitespace.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "cf", "viz", "ca", "approx", "resp", "al", "ref", "fig", "sec", "ch", "eq"}
    | {"mr", "mrs", "ms", "dr", "st", "no", "nos"}
)


def split_sentences(text: str) -> list[str]:
    """Split one paragraph into sentences, keeping abbreviations and initials inside their sentence."""
    text = _SPACE.sub(" ", text).strip()
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        following = text[match.end() : match.end() + 1]
        if not (following.isupper() or following.isdigit() or following in "\"'(["):
            continue
        if text[match.start()] == ".":
            word = text[start : match.start()].rsplit(None, 1)[-1:] or [""]
            word = word[0].lstrip("\"'([").lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def paragraphs(text: str) -> list[str]:
    """Blocks of text separated by blank lines, with inner whitespace collapsed."""
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def document_sentences(text: str) -> list[str]:
    """All sentences of a plain-text document, paragraph after paragraph."""
    return [sentence for paragraph in paragraphs(text) for sentence in split_sentences(paragraph)]


def _strip_inline_markup(text: str) -> str:
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    return _EMPHASIS.sub(r"\1", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rest_prose(text: str, min_words: int = 3) -> list[str]:
    """The prose paragraphs of reST-flavoured text (docstrings, the Python docs).

    Drops headings, tables, doctest sessions and literal blocks (the indented text after a paragraph
    that ends in ``::``), and paragraphs shorter than ``min_words`` words, such as signatures.
    """
    lines = text.expandtabs().splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        underline_next = i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]) and line.strip()
        if _UNDERLINE.match(line) or underline_next or _TABLE_LINE.match(line):
            kept.append("")
            continue
        kept.append(line)

    blocks: list[list[str]] = []
    current: list[str] = []
    for line in kept:
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)

    prose: list[str] = []
    literal_indent: int | None = None  # inside a literal block deeper than this indentation
    for block in blocks:
        indent = min(_indent(line) for line in block)
        if literal_indent is not None:
            if indent > literal_indent:
                continue
            literal_indent = None
        if block[0].lstrip().startswith(">>>"):
            continue
        joined = " ".join(line.strip() for line in block)
        if joined.endswith("::"):
            literal_indent = indent
            joined = joined[:-2].rstrip() + ":"
        joined = _strip_inline_markup(joined)
        if sum(word[:1].isalpha() for word in joined.split()) >= min_words:
            prose.append(joined)
    return prose
