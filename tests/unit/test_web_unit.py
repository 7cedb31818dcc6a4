"""Web UI pieces without root: passwords, sessions, UCI editing, escaping, web-password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mwan.config import edit
from mwan.config.errors import ConfigError
from mwan.config.uci import parse_uci
from mwan.config.validate import parse_config
from mwan.web import auth, pages

SAMPLE = """# mwan3 config, hand-written
config globals 'globals'
	option mmx_mask '0x3F00'

config interface 'wan'   # the fibre
	option enabled '1'
	# two targets
	list track_ip '198.51.100.1'
	list track_ip '198.51.100.2'
	option reliability '1'

config member 'wan_m1'
	option interface 'wan'
"""


def test_password_hash_round_trip_and_rejects() -> None:
    h = auth.hash_password("s3cret-pass")
    assert h.startswith("scrypt$") and "s3cret" not in h
    assert auth.check_password("s3cret-pass", h)
    assert not auth.check_password("s3cret-pasS", h)
    assert not auth.check_password("x", None) and not auth.check_password("x", "garbage")
    assert auth.hash_password("a") != auth.hash_password("a")  # salted


def test_sessions_expire_and_are_bounded() -> None:
    s = auth.Sessions(ttl=10)
    a = s.new(now=100)
    assert s.get(a.token, now=105) is a and auth.csrf_ok(a, a.csrf)
    assert not auth.csrf_ok(a, "x") and not auth.csrf_ok(a, None)
    assert s.get(a.token, now=116) is None  # idle past the ttl
    assert s.get(None) is None and s.get("nope") is None
    many = [s.new(now=200 + i) for i in range(auth.MAX_SESSIONS + 5)]
    assert s.get(many[0].token, now=260) is None and s.get(many[-1].token, now=260)


def test_set_option_keeps_comments_and_position() -> None:
    out = edit.set_option(SAMPLE, "wan", "reliability", "2")
    assert out == SAMPLE.replace("option reliability '1'", "option reliability '2'")
    out = edit.set_option(SAMPLE, "wan", "track_ip", ["203.0.113.1"])
    assert "\t# two targets\n\tlist track_ip '203.0.113.1'\n\toption reliability" in out
    out = edit.set_option(SAMPLE, "wan", "reliability", None)
    assert "reliability" not in out and "# the fibre" in out
    out = edit.set_option(SAMPLE, "wan_m1", "weight", "3")
    assert out.endswith("\toption interface 'wan'\n\toption weight '3'\n")
    with pytest.raises(edit.EditError):
        edit.set_option(SAMPLE, "nosuch", "x", "1")


def test_quoting_round_trips_through_the_parser() -> None:
    for value in ("plain", "it's", 'say "hi"', "a b\tc", "#not-a-comment"):
        out = edit.set_option(SAMPLE, "wan_m1", "interface", value)
        sec = next(s for s in parse_uci(out) if s.name == "wan_m1")
        assert sec.get("interface").value == value  # type: ignore[union-attr]


def test_add_and_delete_sections() -> None:
    out = edit.add_section(SAMPLE, "member", "wan_m2", {"interface": "wan", "metric": "2"})
    cfg = parse_config(out)
    assert cfg.member("wan_m2").metric == 2
    with pytest.raises(edit.EditError):
        edit.add_section(out, "member", "wan_m2", {})
    out = edit.delete_section(out, "wan_m1")
    assert "wan_m1" not in out and "# the fibre" in out
    parse_config(out)


def test_write_atomic_keeps_mode(tmp_path: Path) -> None:
    f = tmp_path / "mwan3"
    f.write_text("old\n")
    f.chmod(0o640)
    edit.write_atomic(str(f), "new\n")
    assert f.read_text() == "new\n" and (f.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["mwan3"]


def test_web_options_are_validated() -> None:
    base = "config globals 'g'\n"
    with pytest.raises(ConfigError, match="needs a password"):
        parse_config(base + "\toption web_enabled '1'\n")
    with pytest.raises(ConfigError, match="not a password hash"):
        parse_config(base + "\toption web_password_hash 'plain'\n")
    with pytest.raises(ConfigError, match="web_port"):
        parse_config(base + "\toption web_port '70000'\n")
    with pytest.raises(ConfigError, match="web_listen"):
        parse_config(base + "\tlist web_listen 'lan'\n")
    cfg = parse_config(base + f"\toption web_enabled '1'\n\toption web_password_hash "
                              f"'{auth.hash_password('password1')}'\n")
    assert cfg.globals.web_listen == ("127.0.0.1",) and cfg.globals.web_port == 8086


def test_pages_escape_everything() -> None:
    evil = "<script>alert(1)</script>"
    out = pages.events_table([{"time": 0, "interface": "wan", "action": "ifdown",
                               "reason": evil}])
    assert evil not in out and "&lt;script&gt;" in out
    assert "<text" in pages.chart([], 0)
    chart = pages.chart([(100.0, 5.0, 0.0, "online"), (200.0, 10.0, 50.0, "offline")], 300.0)
    assert "<polyline" in chart and 'fill="#d33"' in chart


def test_web_password_command_edits_the_config(tmp_path: Path) -> None:
    f = tmp_path / "mwan3"
    f.write_text(SAMPLE)
    run = [sys.executable, "-m", "mwan.cli.main", "--config", str(f), "--run-dir",
           str(tmp_path / "run"), "web-password", "--stdin", "--enable", "--listen",
           "192.168.1.1"]
    res = subprocess.run(run, input="short\n", capture_output=True, text=True, check=False)
    assert res.returncode == 1 and "at least 8" in res.stderr and f.read_text() == SAMPLE
    res = subprocess.run(run, input="long enough pw\n", capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    cfg = parse_config(f.read_text())
    assert cfg.globals.web_enabled and cfg.globals.web_listen == ("192.168.1.1",)
    assert auth.check_password("long enough pw", cfg.globals.web_password_hash)
    assert "# two targets" in f.read_text()


def test_report_schemas_are_valid_json_schemas_and_in_the_openapi_spec() -> None:
    import jsonschema

    from mwan.report.schema import SCHEMAS
    from mwan.web.openapi import SPEC

    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert SPEC["openapi"].startswith("3.1")
    for name in SCHEMAS:
        assert SPEC["components"]["schemas"][name] is SCHEMAS[name]
    refs = [op["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            for path, op in SPEC["paths"].items() if path.startswith("/api/") and "get" in op]
    assert {"$ref": "#/components/schemas/status"} in refs


def test_section_form_writes_only_what_changed() -> None:
    from mwan.web.editor import changed_options

    text = SAMPLE + ("config rule 'web'\n\toption dest_port '80,443'\n\toption proto 'tcp'\n"
                     "\toption use_policy 'balanced'\n")
    sec = {s.name: s for s in parse_uci(text)}
    form = {"section": "wan", "csrf": "x", "opt:enabled": "1", "opt:reliability": "1",
            "opt:track_ip": "198.51.100.1\r\n198.51.100.2\r\n", "opt:count": ""}
    assert changed_options(sec["wan"], form) == {}
    form["opt:track_ip"] = "198.51.100.1\n203.0.113.9"
    form["opt:count"] = "3"
    assert changed_options(sec["wan"], form) == {"track_ip": ["198.51.100.1", "203.0.113.9"],
                                                 "count": "3"}
    web_form = {"opt:dest_port": "80,443", "opt:proto": "udp", "opt:sticky": ""}
    assert changed_options(sec["web"], web_form) == {"proto": "udp"}
    assert changed_options(sec["web"], {"opt:dest_port": "8080"}) == {"dest_port": "8080"}
    assert changed_options(sec["web"], {"opt:dest_port": ""}) == {"dest_port": None}


def test_password_buckets_slow_down_without_locking_out() -> None:
    from mwan.web import guard

    b = guard.Buckets(burst=3, refill=2.0)
    assert [b.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a", 100.0) == 2.0  # the next one in 2 s
    assert b.take("b", 100.0) == 0.0  # another client is not affected
    assert b.take("a", 101.0) == 1.0 and b.take("a", 102.0) == 0.0
    assert b.take("a", 1000.0) == 0.0  # full again after a pause, never locked
    assert guard.client_key("192.0.2.7") == "192.0.2.7"
    assert guard.client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert guard.client_key("2001:db8:1:2:a::1") == guard.client_key("2001:db8:1:2:b::9") \
        == "2001:db8:1:2::/64"


def test_the_editor_says_where_the_ui_moves() -> None:
    from mwan.web.editor import move_note
    from mwan.web.lifecycle import listen_of

    base = "config globals 'g'\n\toption web_enabled '1'\n\toption web_password_hash 'scrypt$x'\n"
    a = parse_config(base)
    b = parse_config(base + "\tlist web_listen '192.0.2.1'\n\tlist web_listen '2001:db8::1'\n"
                     "\toption web_port '8443'\n")
    off = parse_config(base.replace("'1'", "'0'"))
    assert move_note(listen_of(a), a) == ""
    assert move_note(listen_of(a), b) == (" The web UI moves to http://192.0.2.1:8443/, "
                                          "http://[2001:db8::1]:8443/ in a moment.")
    assert "stops" in move_note(listen_of(a), off)
