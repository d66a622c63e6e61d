"""Prose from reST and plain-text documentation (Debian's linux-doc-6.1 and python3.11-doc).

``rest_prose`` already drops headings, tables drawn with ``+``/``|``, doctests and literal blocks. What
it leaves in this documentation is removed here first: directives and comments (the bodies of
object descriptions and admonitions are kept: they are prose), field lists, simple tables drawn
with ``=``, list markers (each item becomes its own paragraph) and definition-list terms. Sentences
that are mostly symbols (register maps, command lines, BibTeX) are dropped at the end.
"""

from __future__ import annotations

import re

from lmforge.data.corpus.base import Document
from lmforge.data.text import rest_prose, split_sentences

_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:\|[^|]+\|\s+)?([\w:.-]+)::")  # .. note::, .. |name| replace::
_COMMENT = re.compile(r"^\s*\.\.(?:\s|$)")  # .. SPDX-License-Identifier, .. _label:, .. [#] footnote
_FIELD = re.compile(r"^\s*:[\w .-]+:(?:\s|$)")  # :Author: ..., :maxdepth: 2
_TABLE_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")
_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+•]|\d+[.)]|#\.|[a-z][.)]|\((?:\d+|[a-z]|[ivx]+)\))\s+(?=\S)")
_STANDARD_ROLE = re.compile(r":(pep|rfc):`(\d+)`", re.IGNORECASE)  # :pep:`8` reads "PEP 8"
_ROLE_PREFIX = re.compile(r"(:[\w.+-]+(?::[\w.+-]+)*:`)(?:~(?:\w+\.)*|!)")  # `~a.b` shows "b", `!a` shows "a"
_SYMBOL_RUN = re.compile(r"[{}\\|]|={2,}|-{3,}|~{2,}|\^{2,}|_{2,}")

# Object descriptions and admonitions whose indented body is prose; other directives' bodies are
# code, tables, figures, tables of contents or generated content.
_OBJECT_DIRECTIVES = frozenset(
    {"function", "method", "class", "attribute", "data", "exception", "decorator", "decoratormethod"}
    | {"classmethod", "staticmethod", "abstractmethod", "coroutinefunction", "coroutinemethod"}
    | {"awaitablefunction", "describe", "opcode", "option", "cmdoption", "envvar", "pdbcommand"}
    | {"macro", "type", "member", "var", "struct", "union", "enum", "enumerator"}
)
_ADMONITIONS = frozenset(
    {"note", "warning", "seealso", "versionadded", "versionchanged", "deprecated", "deprecated-removed"}
    | {"impl-detail", "important", "tip", "attention", "caution", "danger", "error", "hint"}
    | {"admonition", "topic", "sidebar", "glossary", "only", "container"}
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _skip_deeper(lines: list[str], start: int, indent: int, blank_lines: bool) -> int:
    """The index after the lines from ``start`` indented deeper than ``indent``."""
    end = start
    while end < len(lines) and (
        (blank_lines and not lines[end].strip()) or (lines[end].strip() and _indent(lines[end]) > indent)
    ):
        end += 1
    return end


def _skip_directive(lines: list[str], start: int, name: str) -> int:
    indent = _indent(lines[start])
    end = start + 1
    if name in _OBJECT_DIRECTIVES:  # further signatures and options, up to the blank line before the body
        return _skip_deeper(lines, end, indent, blank_lines=False)
    if name in _ADMONITIONS:  # only the options: the body may follow without a blank line
        while end < len(lines) and _FIELD.match(lines[end]) and _indent(lines[end]) > indent:
            end += 1
        return end
    return _skip_deeper(lines, end, indent, blank_lines=True)


def _skip_simple_table(lines: list[str], start: int) -> int:
    """The index after a table drawn with ``===`` borders (the last border is followed by a blank line)."""
    end = start + 1
    while end < len(lines) and not (
        _TABLE_BORDER.match(lines[end]) and (end + 1 == len(lines) or not lines[end + 1].strip())
    ):
        end += 1
    return end + 1


def drop_markup(text: str) -> str:
    """The text with the markup ``rest_prose`` does not know replaced by blank lines."""
    text = _ROLE_PREFIX.sub(r"\1", _STANDARD_ROLE.sub(lambda role: f"{role[1].upper()} {role[2]}", text))
    lines = text.expandtabs().splitlines()
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive or _COMMENT.match(line):
            i = _skip_directive(lines, i, directive.group(1).rsplit(":", 1)[-1] if directive else "")
            kept.append("")
            continue
        if _TABLE_BORDER.match(line):
            i = _skip_simple_table(lines, i)
            kept.append("")
            continue
        if _FIELD.match(line):
            i = _skip_deeper(lines, i + 1, _indent(line), blank_lines=False)
            kept.append("")
            continue
        item = _LIST_ITEM.match(line)
        if item:
            kept.extend(["", item.group(1) + line[item.end() :]])
        elif (
            i + 1 < len(lines)
            and line.strip()
            and lines[i + 1].strip()
            and _indent(lines[i + 1]) > _indent(line)
            and (not kept or not kept[-1].strip())
        ):
            kept.extend([line, ""])  # a definition-list term: a paragraph of its own
        else:
            kept.append(line)
        i += 1
    return "\n".join(kept)


def is_prose(sentence: str) -> bool:
    """At least three words, mostly letters, and no run of markup symbols."""
    letters = sum(char.isalpha() or char == " " for char in sentence)
    return len(sentence.split()) >= 3 and letters >= 0.8 * len(sentence) and not _SYMBOL_RUN.search(sentence)


def rest_sentences(text: str) -> Document:
    """The prose sentences of one reST or plain-text file, in order."""
    return [
        sentence
        for paragraph in rest_prose(drop_markup(text))
        for sentence in split_sentences(paragraph)
        if is_prose(sentence)
    ]
