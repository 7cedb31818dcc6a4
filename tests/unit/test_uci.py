"""The UCI parser: syntax, line numbers, errors, and properties over arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mwan.config.uci import UciSyntaxError, parse_uci

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
