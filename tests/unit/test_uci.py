"""The UCI parser: syntax, line numbers, errors, and properties over arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mwan.config.uci import UciSyntaxError, parse_uci, split_words

TEXT = """\
# a comment
package mwan3

config globals 'globals'
	option mmx_mask '0x3F00'   # trailing comment

config interface wan
	option enabled "1"
	list track_ip '192.0.2.1'
	list track_ip 192.0.2.2
	option reliability '2'

config rule
	option use_policy 'balanced'
	option dest_port '80,443'
config rule
	option use_policy "it's fine"
"""


def test_sections_options_lists_and_line_numbers() -> None:
    secs = parse_uci(TEXT, "/etc/config/mwan3")
    assert [(s.type, s.name, s.anonymous, s.line) for s in secs] == [
        ("globals", "globals", False, 4),
        ("interface", "wan", False, 7),
        ("rule", "@rule[0]", True, 13),
        ("rule", "@rule[1]", True, 16),
    ]
    g = secs[0].get("mmx_mask")
    assert g is not None and g.value == "0x3F00" and g.line == 5 and g.kind == "option"
    wan = secs[1]
    track = wan.get("track_ip")
    assert track is not None and track.kind == "list"
    assert track.values == ("192.0.2.1", "192.0.2.2") and track.lines == (9, 10)
    assert wan.get("enabled").value == "1"  # type: ignore[union-attr]
    assert wan.get("reliability").line == 11  # type: ignore[union-attr]
    assert secs[3].get("use_policy").value == "it's fine"  # type: ignore[union-attr]
    assert wan.get("nothing") is None


def test_quotes_concatenate_and_keep_hashes() -> None:
    (sec,) = parse_uci("config rule 'r'\n\toption a 'x y'\"z\"w\n\toption b '# not a comment'\n")
    assert sec.get("a").value == "x yzw"  # type: ignore[union-attr]
    assert sec.get("b").value == "# not a comment"  # type: ignore[union-attr]


def test_a_repeated_option_keeps_the_last_value() -> None:
    (sec,) = parse_uci("config interface 'wan'\n\toption interval 5\n\toption interval 7\n")
    assert sec.get("interval").value == "7"  # type: ignore[union-attr]


def test_empty_and_comment_only_text() -> None:
    assert parse_uci("") == ()
    assert parse_uci("\n# nothing\n   \n\t# more\n") == ()


@pytest.mark.parametrize("text,line,fragment", [
    ("config rule 'r'\n\toption a 'open\n", 2, "unterminated single quote"),
    ('config rule r\n\n\toption a "open\n', 3, "unterminated double quote"),
    ("option a b\n", 1, "outside of a 'config' section"),
    ("config\n", 1, "'config' takes a type"),
    ("config rule 'r'\n\toption a\n", 2, "takes a name and one value"),
    ("config rule 'r'\n\toption a b c\n", 2, "takes a name and one value"),
    ("config rule 'r'\n\tfrobnicate a b\n", 2, "unknown keyword"),
    ("config rule 'bad name'\n", 1, "invalid section name"),
    ("config 'ru le' x\n", 1, "invalid section type"),
    ("config rule r\n\toption 'a.b' c\n", 2, "invalid option name"),
])
def test_syntax_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(UciSyntaxError) as e:
        parse_uci(text, "/etc/config/mwan3")
    assert e.value.line == line
    assert fragment in e.value.message
    assert str(e.value).startswith(f"/etc/config/mwan3:{line}: ")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        parse_uci(text)
    except UciSyntaxError as e:
        assert e.line >= 1


UCI_LINES = st.lists(st.sampled_from([
    "config", "config interface", "config rule 'r1'", "option", "list", "option a",
    "option a 'b'", "list track_ip \"192.0.2.1\"", "'", '"', "# x", "package", "\t", "option a b c",
    "config rule r2", "list l 'x' # c", "config 'x", "option é 'ü'", "\\", "option a ''",
]), max_size=12).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(UCI_LINES)
def test_never_crashes_on_uci_like_text(text: str) -> None:
    try:
        parse_uci(text)
    except UciSyntaxError as e:
        assert 1 <= e.line <= text.count("\n") + 1


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,14}", fullmatch=True)
VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n\r"),
                 max_size=20)


def quote(v: str) -> str:
    """UCI quoting: single quotes, with ' written as '\\''."""
    return "'" + v.replace("'", "'\"'\"'") + "'"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    NAMES, st.one_of(st.none(), NAMES),
    st.dictionaries(NAMES, st.one_of(VALUES.map(lambda v: ("option", (v,))),
                                     st.lists(VALUES, min_size=1, max_size=4).map(
                                         lambda vs: ("list", tuple(vs)))),
                    max_size=5)), max_size=6))
def test_round_trip(sections: list[tuple[str, str | None, dict[str, tuple[str, tuple[str, ...]]]]]
                    ) -> None:
    lines = []
    for type_, name, opts in sections:
        lines.append(f"config {type_}" + (f" {quote(name)}" if name else ""))
        for key, (kind, values) in opts.items():
            for v in values:
                lines.append(f"\t{kind} {key} {quote(v)}")
        lines.append("")
    parsed = parse_uci("\n".join(lines))
    assert len(parsed) == len(sections)
    for sec, (type_, name, opts) in zip(parsed, sections):
        assert sec.type == type_
        if name:
            assert sec.name == name and not sec.anonymous
        else:
            assert sec.anonymous
        assert {o.name: (o.kind, o.values) for o in sec.options} == opts


# ------------------------------------------------ text pasted from elsewhere

def test_crlf_line_ends_read_as_lf() -> None:
    text = TEXT.replace("\n", "\r\n")
    assert parse_uci(text, "f") == parse_uci(TEXT, "f")


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert parse_uci("\ufeff" + TEXT, "f") == parse_uci(TEXT, "f")


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e"])
def test_lines_break_only_at_newline(sep: str) -> None:
    # inside quotes the character is kept and does not start a new line
    text = f"config rule 'r'\n\toption a 'x{sep}y'\n\toption b 'z'\n"
    (sec,) = parse_uci(text, "f")
    assert sec.get("a").value == f"x{sep}y"  # type: ignore[union-attr]
    assert sec.get("b").line == 3  # type: ignore[union-attr]
    # outside quotes it is an error on the line an editor shows
    with pytest.raises(UciSyntaxError) as e:
        parse_uci(f"config rule 'r'\n\toption a 'x'{sep}option b 'y'\n", "/etc/config/mwan3")
    assert e.value.line == 2
    assert f"U+{ord(sep):04X}" in e.value.message and "newline" in e.value.message


def test_form_feed_and_vertical_tab_are_blanks_as_in_libuci() -> None:
    (sec,) = parse_uci("config rule 'r'\f\n\toption\va 'b'\n\toption c 'd'\n")
    assert [(o.name, o.value, o.line) for o in sec.options] == [("a", "b", 2), ("c", "d", 3)]


@pytest.mark.parametrize("char,name,fix", [
    ("\u00a0", "U+00A0 NO-BREAK SPACE", "plain space"),
    ("\u202f", "U+202F NARROW NO-BREAK SPACE", "plain space"),
    ("\u2003", "U+2003 EM SPACE", "plain space"),
    ("\u3000", "U+3000 IDEOGRAPHIC SPACE", "plain space"),
    ("\u200b", "U+200B ZERO WIDTH SPACE", "delete it"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE", "delete it"),
    ("\x00", "U+0000 NULL", "delete it"),
    ("\x1b", "U+001B ESCAPE", "delete it"),
])
def test_odd_blanks_between_words_name_the_character(char: str, name: str, fix: str) -> None:
    text = f"config interface 'wan'\n\toption{char}device 'eth0'\n"
    with pytest.raises(UciSyntaxError) as e:
        parse_uci(text, "/etc/config/mwan3")
    assert str(e.value).startswith("/etc/config/mwan3:2: ")
    assert name in e.value.message and fix in e.value.message
    assert "column 8" in e.value.message


def test_odd_characters_in_bare_words_and_after_values_are_errors() -> None:
    for line in ("\toption device eth0\u00a0", "\toption device 'eth0'\u00a0", "\u00a0option a b"):
        with pytest.raises(UciSyntaxError, match="U\\+00A0 NO-BREAK SPACE") as e:
            parse_uci(f"config interface 'wan'\n{line}\n", "f")
        assert e.value.line == 2


def test_odd_characters_inside_quotes_and_comments_are_kept() -> None:
    text = ("# pasted\u00a0from a\u2028web page\u200b\nconfig rule 'r'\n"
            "\toption a 'x\u00a0y'\n\toption b \"\u200bz\"  # c\u00a0d\n")
    (sec,) = parse_uci(text, "f")
    assert sec.get("a").value == "x\u00a0y"  # type: ignore[union-attr]
    assert sec.get("b").value == "\u200bz"  # type: ignore[union-attr]
    assert sec.line == 2


def test_binary_looking_text_is_a_clear_error() -> None:
    with pytest.raises(UciSyntaxError, match="U\\+0000 NULL at column 1") as e:
        parse_uci("\x00\x00\x01\x02ELF\n", "f")
    assert e.value.line == 1


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab '\"#\n\r\t\f\v\u00a0\u2028\x85\ufeff\x00;\\")))
def test_error_lines_count_only_newlines(text: str) -> None:
    try:
        parse_uci(text)
    except UciSyntaxError as e:
        assert 1 <= e.line <= text.count("\n") + 1


def test_split_lines_counts_lines_as_the_parser_does() -> None:
    from mwan.config.uci import split_lines

    assert split_lines("") == [] and split_lines("a\n") == ["a"] and split_lines("a\n\n") == ["a", ""]
    text = "config rule 'r'\f\r\n\toption a 'x\u2028y'\x0b\n\toption b 'z'\n"
    lines = split_lines(text)
    (sec,) = parse_uci(text)
    assert len(lines) == 3 and "option b" in lines[sec.get("b").line - 1]  # type: ignore[union-attr]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=" \t\r\f\v'\"\\#;ab=:-.0", max_size=24))
def test_the_plain_line_fast_path_splits_as_the_quoting_loop(line: str) -> None:
    # odd=True skips the regex fast path (the loop then looks for odd characters,
    # of which this alphabet has none): both must give the same words or error
    def words(odd: bool) -> object:
        try:
            return split_words(line, "p", 1, odd=odd)
        except UciSyntaxError as exc:
            return str(exc)

    assert words(False) == words(True)
