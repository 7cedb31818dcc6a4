"""Regression (issue 10, item 4): config text pasted from a web page was misread.

Before the fix: lines were split with ``str.splitlines()``, which also breaks
at U+2028, U+0085, form feed and \\x1c-\\x1e, so line numbers did not match
editors and ``grep -n`` (and a quoted value holding one came apart); a
U+00A0 NO-BREAK SPACE between words became part of a word ("unknown keyword
'option\\xa0device'"), naming neither the character nor the fix; a UTF-8 BOM
made line 1 an unknown keyword.
"""

from __future__ import annotations

import pytest

from mwan.config.errors import ConfigError
from mwan.config.validate import parse_config

PATH = "/etc/config/mwan3"
CONFIG = """\
config interface 'wan'
	option enabled '1'
	option device 'eth1'

config member 'm'
	option interface 'wan'

config policy 'p'
	list use_member 'm'
"""


def test_config_nbsp_between_words_is_named_with_its_fix() -> None:
    text = CONFIG.replace("\toption device 'eth1'", "\toption\u00a0device 'eth1'")
    with pytest.raises(ConfigError) as e:
        parse_config(text, PATH)
    (p,) = e.value.problems
    assert p.line == 3
    assert "U+00A0 NO-BREAK SPACE" in p.message and "plain space" in p.message


def test_config_line_numbers_count_only_newlines() -> None:
    # a form feed and a U+2028 inside a quoted value do not start new lines
    text = "\f\n" + CONFIG.replace("'eth1'", "'eth1'\f") + "config rule 'r'\n" \
        "\toption use_policy 'p'\n\toption ipset 'a\u2028b'\n\toption proto 'nonsense'\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, PATH)
    lines = {p.option: p.line for p in e.value.problems}
    assert lines["proto"] == 14  # what `grep -n nonsense` says
    assert lines["ipset"] == 13


def test_config_bom_and_crlf_read_like_the_plain_text() -> None:
    pasted = "\ufeff" + CONFIG.replace("\n", "\r\n")
    assert parse_config(pasted, PATH).interfaces == parse_config(CONFIG, PATH).interfaces
