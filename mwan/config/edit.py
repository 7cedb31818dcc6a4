"""Edit UCI text in place: change options and sections, keep everything else.

The web UI's config editor writes the file back through these functions, so
comments, blank lines, the order of sections and options and the quoting of
untouched lines stay as the user wrote them.  Pure text → text; the result
is parsed again by the caller (and validated) before it is used.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

from .uci import UciSection, parse_uci, split_lines, split_words

Values = str | Sequence[str] | None  # a str: ``option``; a sequence: ``list``; None: remove


class EditError(ValueError):
    pass


def quote(value: str) -> str:
    """A UCI word for ``value``: single quotes; a quote inside becomes ``'\\''``."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _lines(text: str) -> list[str]:
    return split_lines(text)  # the parser's line numbers: broken only at \n, as in libuci


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def _section_span(text: str, path: str, name: str) -> tuple[UciSection, int, int]:
    """The section and its lines: header index, index after its last option line."""
    sections = parse_uci(text, path)
    for i, sec in enumerate(sections):
        if sec.name == name:
            lines = _lines(text)
            end = sections[i + 1].line - 1 if i + 1 < len(sections) else len(lines)
            last = sec.line
            for j in range(sec.line, end):
                words = split_words(lines[j], path, j + 1)
                if words and words[0] in ("option", "list"):
                    last = j + 1
            return sec, sec.line - 1, last
    raise EditError(f"no section {name!r}")


def _indent(lines: list[str], start: int, end: int) -> str:
    for j in range(start + 1, end):
        stripped = lines[j].lstrip()
        if stripped.startswith(("option ", "list ", "option\t", "list\t")):
            return lines[j][: len(lines[j]) - len(stripped)]
    return "\t"


def _option_lines(name: str, values: Values, indent: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [f"{indent}option {name} {quote(values)}"]
    return [f"{indent}list {name} {quote(v)}" for v in values]


def set_option(text: str, section: str, name: str, values: Values,
               path: str = "<config>") -> str:
    """Set (or with None remove) one option of a section; other lines are untouched.

    The new lines go where the option was first written, else after the
    section's last option.
    """
    _sec, start, last = _section_span(text, path, section)
    lines = _lines(text)
    indent = _indent(lines, start, last)
    keep: list[str] = []
    insert_at: int | None = None
    for j in range(start + 1, last):
        words = split_words(lines[j], path, j + 1)
        if len(words) >= 2 and words[0] in ("option", "list") and words[1] == name:
            if insert_at is None:
                insert_at = len(keep)
            continue
        keep.append(lines[j])
    new = _option_lines(name, values, indent)
    if insert_at is None:
        insert_at = len(keep)
    body = keep[:insert_at] + new + keep[insert_at:]
    return _join(lines[: start + 1] + body + lines[last:])


def set_section(text: str, section: str, options: Mapping[str, Values],
                path: str = "<config>") -> str:
    """Set many options of one section (None removes); options not named stay as they are."""
    for name, values in options.items():
        text = set_option(text, section, name, values, path)
    return text


def add_section(text: str, type_: str, name: str, options: Mapping[str, Values],
                path: str = "<config>") -> str:
    if any(s.name == name for s in parse_uci(text, path)):
        raise EditError(f"a section named {name!r} exists already")
    lines = _lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    return _join(lines + [""] + section_lines(type_, name, options))


def section_lines(type_: str, name: str, options: Mapping[str, Values]) -> list[str]:
    """A section as UCI lines: its header, then each option (None: left out)."""
    out = [f"config {type_} {quote(name)}"]
    for opt, values in options.items():
        out += _option_lines(opt, values, "\t")
    return out


def delete_section(text: str, section: str, path: str = "<config>") -> str:
    """Remove a section's header and option lines (comments around it stay)."""
    _sec, start, last = _section_span(text, path, section)
    lines = _lines(text)
    return _join(lines[:start] + lines[last:])


SECRET_OPTIONS = ("web_password_hash",)


def write_atomic(path: str, text: str) -> None:
    """Replace the file in one rename (same directory, mode kept, fsynced).

    A config that holds a secret (the web UI's password hash) is written
    readable by its owner only (group and other bits dropped); the new file is
    never readable by others, not even before the rename.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    if any(name in text for name in SECRET_OPTIONS):
        mode &= 0o7700
    fd, tmp = tempfile.mkstemp(prefix=".mwan3.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
