"""A parser for OpenWrt's UCI configuration syntax that keeps line numbers.

The grammar (as libuci reads it)::

    package NAME
    config TYPE ['NAME']
        option KEY 'VALUE'
        list KEY 'VALUE'

Words may be bare, 'single quoted' (no escapes) or "double quoted" (backslash
escapes), and adjacent pieces concatenate (``a'b c'`` is one word).  ``#``
starts a comment where a word could start.  Sections without a name are
anonymous and get libuci's ``@type[N]`` index as their reference.

Lines end only at ``\\n``, as in libuci, so line numbers match editors and
``grep -n``; ``\\r`` (of CRLF line ends), ``\\f`` and ``\\v`` are blanks between
words, as libuci's ``isspace()`` makes them.  A UTF-8 byte order mark at the
start is ignored.  Text pasted from web pages and word processors brings
characters that look like blanks but are not (U+00A0 NO-BREAK SPACE, U+2028
LINE SEPARATOR, zero-width spaces, control characters): outside quotes they
are an error that names the character and its column; inside quotes they
are kept as written (the option's own check then judges the value).

The parser never raises on bad input other than :class:`UciSyntaxError`,
which carries the file and line of the fault.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["UciOption", "UciSection", "UciSyntaxError", "parse_uci", "split_lines"]

BOM = "\ufeff"
# Characters that are not blanks to libuci but look like one (or like nothing):
# controls other than \t \n \v \f \r, Unicode spaces, line/paragraph
# separators and the invisible format characters that copy-and-paste brings.
_ODD = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u00a0\u00ad\u1680\u180e\u2000-\u200f"
                  "\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ufeff\ufff9-\ufffb]")
_CONTROL_NAMES = {0x00: "NULL", 0x1B: "ESCAPE", 0x1C: "FILE SEPARATOR", 0x1D: "GROUP SEPARATOR",
                  0x1E: "RECORD SEPARATOR", 0x1F: "UNIT SEPARATOR", 0x7F: "DELETE",
                  0x85: "NEXT LINE"}


class UciSyntaxError(ValueError):
    """Malformed UCI text; ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass(frozen=True)
class UciOption:
    """One option or list of a section: its values and where they were written."""

    name: str
    kind: Literal["option", "list"]
    values: tuple[str, ...]
    line: int  # line of the first value
    lines: tuple[int, ...]  # line of each value

    @property
    def value(self) -> str:
        """The value of an ``option`` (the last one written for a list)."""
        return self.values[-1]


@dataclass(frozen=True)
class UciSection:
    """A ``config`` section with its options in file order."""

    type: str
    name: str  # the given name, or ``@type[N]`` for an anonymous section
    anonymous: bool
    line: int
    options: tuple[UciOption, ...] = field(default=())

    def get(self, name: str) -> UciOption | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


def split_lines(text: str) -> list[str]:
    """The lines of a config text as libuci counts them: broken only at ``\\n``.

    A final ``\\n`` ends the last line (no empty line after it), as
    ``str.splitlines()`` has it; a ``\\r`` before it stays (a blank to the parser).
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def char_name(c: str) -> str:
    """``U+00A0 NO-BREAK SPACE``: a character as a user can look it up."""
    name = unicodedata.name(c, "") or _CONTROL_NAMES.get(ord(c), "control character")
    return f"U+{ord(c):04X} {name}"


def _odd_char(path: str, lineno: int, c: str, column: int) -> UciSyntaxError:
    cat = unicodedata.category(c)
    if c in "\x1c\x1d\x1e\x85\u2028\u2029":
        fix = "lines end only at a newline (\\n): replace it with one"
    elif cat == "Zs":
        fix = "replace it with a plain space (text pasted from a web page?)"
    elif cat == "Cf":
        fix = "delete it (it is invisible in most editors)"
    else:
        fix = "delete it (a config file holds text only)"
    return UciSyntaxError(path, lineno, f"{char_name(c)} at column {column} outside quotes: "
                          f"{fix}")


# A line without double quotes, backslashes, comments or ';' splits on blanks
# outside single quotes; a word is its pieces with the quotes taken out.
_PLAIN = re.compile(r"[^\"\\#;]*")
_WORD = re.compile(r"(?:[^ \t\r\f\v']|'[^']*')+")


def split_words(text: str, path: str, lineno: int, odd: bool | None = None) -> list[str]:
    """Split one line into words following UCI's quoting rules.

    ``odd`` says whether the line may hold a character of ``_ODD`` (found
    by the caller with one search over the whole text); None: look.
    """
    if odd is None:
        odd = _ODD.search(text) is not None
    if not odd and _PLAIN.fullmatch(text) and text.count("'") % 2 == 0:
        # most lines (``option name 'value'``): one regex, same words as the loop below
        return [w.replace("'", "") for w in _WORD.findall(text)]
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\f\v":
            i += 1
            continue
        if c == "#":
            break
        if c == ";":
            # libuci accepts ';' as a statement separator; treat as whitespace
            i += 1
            continue
        word: list[str] = []
        while i < n and text[i] not in " \t\r\f\v;":
            c = text[i]
            if c == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise UciSyntaxError(path, lineno, "unterminated single quote")
                word.append(text[i + 1 : end])
                i = end + 1
            elif c == '"':
                i += 1
                closed = False
                while i < n:
                    c = text[i]
                    if c == "\\" and i + 1 < n:
                        word.append(text[i + 1])
                        i += 2
                        continue
                    if c == '"':
                        closed = True
                        i += 1
                        break
                    word.append(c)
                    i += 1
                if not closed:
                    raise UciSyntaxError(path, lineno, "unterminated double quote")
            elif c == "\\" and i + 1 < n:
                word.append(text[i + 1])
                i += 2
            elif c == "#" and not word:
                break
            else:
                if odd and _ODD.match(c):
                    raise _odd_char(path, lineno, c, i + 1)
                word.append(c)
                i += 1
        words.append("".join(word))
    return words


_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]+")  # ASCII letters, digits, '_' and '-'


def _valid_identifier(word: str) -> bool:
    return _IDENTIFIER.fullmatch(word) is not None


class _SectionBuilder:
    def __init__(self, type_: str, name: str | None, line: int) -> None:
        self.type = type_
        self.name = name
        self.line = line
        self.order: list[str] = []
        self.kinds: dict[str, Literal["option", "list"]] = {}
        self.values: dict[str, list[tuple[str, int]]] = {}

    def set(self, kind: Literal["option", "list"], key: str, value: str, line: int) -> None:
        if key not in self.values:
            self.order.append(key)
            self.values[key] = []
        if kind == "option":
            # a later 'option' replaces, as in libuci
            self.values[key] = [(value, line)]
        else:
            if self.kinds.get(key) == "option":
                self.values[key] = []
            self.values[key].append((value, line))
        self.kinds[key] = kind

    def build(self, name: str, anonymous: bool) -> UciSection:
        opts = tuple(
            UciOption(
                name=k,
                kind=self.kinds[k],
                values=tuple(v for v, _ in self.values[k]),
                line=self.values[k][0][1],
                lines=tuple(ln for _, ln in self.values[k]),
            )
            for k in self.order
        )
        return UciSection(self.type, name, anonymous, self.line, opts)


def parse_uci(text: str, path: str = "<config>") -> tuple[UciSection, ...]:
    """Parse UCI text into sections, in file order.

    Raises :class:`UciSyntaxError` for the first malformed line.
    """
    if text.startswith(BOM):
        text = text[1:]  # editors on Windows write one; libuci would choke on it
    odd_text = _ODD.search(text) is not None
    builders: list[_SectionBuilder] = []
    current: _SectionBuilder | None = None
    for lineno, raw in enumerate(split_lines(text), start=1):
        words = split_words(raw, path, lineno, odd_text and _ODD.search(raw) is not None)
        if not words:
            continue
        keyword, args = words[0], words[1:]
        if keyword == "package":
            if len(args) != 1:
                raise UciSyntaxError(path, lineno, "'package' takes one name")
            continue
        if keyword == "config":
            if not 1 <= len(args) <= 2:
                raise UciSyntaxError(path, lineno, "'config' takes a type and an optional name")
            if not _valid_identifier(args[0]):
                raise UciSyntaxError(path, lineno, f"invalid section type {args[0]!r}")
            name = args[1] if len(args) == 2 else None
            if name is not None and not _valid_identifier(name):
                raise UciSyntaxError(path, lineno, f"invalid section name {name!r}")
            current = _SectionBuilder(args[0], name, lineno)
            builders.append(current)
            continue
        if keyword in ("option", "list"):
            if current is None:
                raise UciSyntaxError(path, lineno, f"'{keyword}' outside of a 'config' section")
            if len(args) != 2:
                raise UciSyntaxError(path, lineno, f"'{keyword}' takes a name and one value")
            if not _valid_identifier(args[0]):
                raise UciSyntaxError(path, lineno, f"invalid option name {args[0]!r}")
            current.set("option" if keyword == "option" else "list", args[0], args[1], lineno)
            continue
        raise UciSyntaxError(path, lineno, f"unknown keyword {keyword!r}")

    sections: list[UciSection] = []
    type_counts: dict[str, int] = {}
    for b in builders:
        idx = type_counts.get(b.type, 0)
        type_counts[b.type] = idx + 1
        if b.name is None:
            sections.append(b.build(f"@{b.type}[{idx}]", True))
        else:
            sections.append(b.build(b.name, False))
    return tuple(sections)
