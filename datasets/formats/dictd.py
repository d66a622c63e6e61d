"""The GNU Collaborative International Dictionary of English in dictd format (Debian ``dict-gcide``).

``gcide.index`` has one line per headword, ``word<TAB>offset<TAB>length``, the numbers written in
dictd's base64 (digits ``A-Za-z0-9+/``, most significant first); several headwords may share one
entry. ``gcide.dict.dz`` is dictzip, which is gzip with an extra header field, so ``gzip`` reads it.
An entry is a headline (word, pronunciation, part of speech, etymology) and indented senses, with
quotations indented further. Only the definitions are kept: the headline, etymologies, usage labels,
source tags like ``[1913 Webster]``, quotations and their authors, synonym lists and derived forms go.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from lmforge.data.corpus.base import Document
from lmforge.data.text import split_sentences

BASE64_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DIGIT_VALUES = {digit: value for value, digit in enumerate(BASE64_DIGITS)}
HEADER_PREFIX = "00-database-"  # the entries describing the database itself

# Letters written as codes: [=a] (a macron), [e^] (e breve), ["u] (u umlaut), [ae], [imac] ...
_ACCENTED = re.compile(r"\[[=\-^~'`\".,*]([A-Za-z]{1,2})\]|\[([A-Za-z]{1,2})\^\]")
_NAMED_CHARACTERS = {"[ae]": "ae", "[AE]": "AE", "[oe]": "oe", "[OE]": "OE", "[imac]": "i", "[aum]": "a"}
_NAMED_CHARACTERS |= {"[add]": "a", "[asl]": "a", "[udd]": "u", "[deg]": "°", "[sect]": "§", "[pounds]": "£"}
_NAMED = re.compile("|".join(re.escape(code) for code in _NAMED_CHARACTERS))
_BRACKETS = re.compile(r"\[[^\[\]]*\]")  # etymologies, [Obs.], [1913 Webster]; innermost first
_RESPELLING = re.compile(r"\([^()]*[`\"*][^()]*\)")  # (h[=oo]z), (kal`si*fi*ka"shun)
_FIELD_LABEL = re.compile(r"\((?:[A-Z][A-Za-z]*\.?(?:\s*(?:&|and|,)\s*)?)+\)")  # (Bot.), (Zool. & Bot.)
_LEADING_GRAMMAR = re.compile(
    r"^[,\s]*(?:(?:n|a|adj|adv|v|t|i|pl|sing|prop|imp|p|pr|pron|prep|conj|interj|vb|superl|compar"
    r"|fem|masc)\.\s*|&\s*)+(?=[A-Z])"
)
_SENSE_NUMBER = re.compile(r"^(?:\d+\.|\([a-z]\))\s+")
_CITATION = re.compile(r"\s*--[A-Z].*$")  # --Shak., --Sir T. North.
_DERIVED_FORMS = re.compile(r"\s--\s*\{.*$")  # -- {Tac"tic*al*ly}, adv.
_LABEL = re.compile(r"^(?:Note|Usage):\s*")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:])")
_RESIDUE = re.compile(r"[\[\]{}\\*`|<>]|\w[\"?]\w|\?\?")  # codes left over, stress marks, lost characters
_QUOTATION_INDENT = 8  # senses start 3 to 6 columns in, quotations 9 or more
_LONGEST_SENTENCE = 1000  # characters; the few longer "sentences" are word lists and tables


def decode_number(digits: str) -> int:
    """A dictd base64 number: ``"A"`` is 0, ``"/"`` is 63, ``"BA"`` is 64."""
    value = 0
    for digit in digits:
        value = value * 64 + _DIGIT_VALUES[digit]
    return value


def read_headwords(path: Path) -> list[tuple[str, tuple[int, int]]]:
    """Every (headword, (offset, length)) line of the index, in its order, the database's own left out."""
    lines = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
    return [
        (word, (decode_number(offset), decode_number(length)))
        for word, offset, length in lines
        if not word.startswith(HEADER_PREFIX)
    ]


def read_index(path: Path) -> list[tuple[int, int]]:
    """The (offset, length) of every entry once, in file order, without the database's own entries."""
    spans: set[tuple[int, int]] = set()
    header: set[tuple[int, int]] = set()  # other names (00-gcide-*) point at the same entries
    for line in path.read_text(encoding="utf-8").splitlines():
        word, offset, length = line.split("\t")
        span = (decode_number(offset), decode_number(length))
        (header if word.startswith(HEADER_PREFIX) else spans).add(span)
    return sorted(spans - header)


def read_entries(dict_path: Path, spans: list[tuple[int, int]]) -> Iterator[str]:
    data = gzip.decompress(dict_path.read_bytes())
    for offset, length in spans:
        raw = data[offset : offset + length]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:  # a few entries hold Windows-1252 quotes
            yield raw.decode("cp1252", errors="replace")


def _decode_characters(text: str) -> str:
    text = _ACCENTED.sub(lambda match: match.group(1) or match.group(2), text)
    return _NAMED.sub(lambda match: _NAMED_CHARACTERS[match.group()], text)


def _without_brackets(text: str) -> str:
    while True:
        stripped = _BRACKETS.sub("", text)
        if stripped == text:
            return text
        text = stripped


def _body_lines(lines: list[str]) -> list[str]:
    """The lines after the headline, which may wrap and holds balanced parentheses."""
    depth = 0
    for number, line in enumerate(lines):
        if number and depth <= 0 and line[:1].isspace():
            return lines[number:]
        depth += line.count("(") - line.count(")")
    return []


def _senses(lines: list[str]) -> list[str]:
    """One paragraph per sense, from the blocks of the body that are neither quotations nor synonyms."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    senses: list[str] = []
    for block in blocks:
        if not block or len(block[0]) - len(block[0].lstrip()) >= _QUOTATION_INDENT:
            continue
        if block[0].lstrip().startswith(("Syn:", "Syn.")):
            continue
        current: list[str] = []
        for line in block:
            line = _CITATION.sub("", line).strip()
            if _SENSE_NUMBER.match(line) and current:
                senses.append(" ".join(current))
                current = []
            line = _SENSE_NUMBER.sub("", line)
            if line:
                current.append(line)
        if current:
            senses.append(" ".join(current))
    return senses


def is_definition(sentence: str) -> bool:
    words = sentence.split()
    if sentence.startswith("See ") or len(sentence) > _LONGEST_SENTENCE or _RESIDUE.search(sentence):
        return False
    return len(words) >= 3 or (len(words) == 2 and sentence[-1] in ".!?")  # not a stray headword


def headline_word(entry: str) -> str:
    """The word an entry defines, as its headline spells it (``Lantern`` of ``Lantern \\Lan"tern\\, n.``)."""
    return _decode_characters(entry.split("\\", 1)[0]).strip()


def entry_senses(entry: str) -> list[str]:
    """The text of each of one entry's senses and notes, in order, cleaned as ``entry_sentences`` says."""
    text = _without_brackets(_decode_characters(entry))
    senses = []
    for sense in _senses(_body_lines(text.splitlines())):
        sense = _DERIVED_FORMS.sub("", sense)
        sense = _FIELD_LABEL.sub("", _RESPELLING.sub("", sense)).replace("{", "").replace("}", "")
        sense = _LABEL.sub("", _LEADING_GRAMMAR.sub("", sense))
        senses.append(_SPACE_BEFORE_PUNCTUATION.sub(r"\1", sense))
    return senses


def entry_sentences(entry: str) -> Document:
    """The sentences of one entry's definitions and notes, in order."""
    return [
        sentence
        for sense in entry_senses(entry)
        for sentence in split_sentences(sense)
        if is_definition(sentence)
    ]
