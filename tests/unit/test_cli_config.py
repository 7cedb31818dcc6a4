"""``mwan3 check`` and ``mwan3 show-config`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from mwan.cli.main import main


@pytest.fixture
def example(tmp_path: Path) -> Path:
    p = tmp_path / "mwan3"
    p.write_text(resources.files("mwan").joinpath("data/mwan3.example").read_text())
    return p


def test_check_ok(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(example), "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "4 interfaces" in out and "10 members" in out \
        and "5 policies" in out and "3 rules" in out


BAD = """\
config interface 'wan'
	option enabled '1'
	option reliability '3'
	list track_ip '192.0.2.1'

config member 'wan_m1'
	option interface 'wanx'

config policy 'a_policy_name_too_long'
	list use_member 'wan_m1'
	list use_member 'ghost'

config rule 'r'
	option use_policy 'nope'
	option dest_port '443'
	option family 'ipv4'
	option dest_ip '2001:db8::1'
"""


def test_check_reports_every_error_with_its_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "mwan3"
    p.write_text(BAD)
    assert main(["--config", str(p), "check"]) == 1
    err = capsys.readouterr().err
    for line, where in [(3, "section 'wan' option 'reliability'"),
                        (7, "section 'wan_m1' option 'interface'"),
                        (9, "section 'a_policy_name_too_long'"),
                        (11, "section 'a_policy_name_too_long' option 'use_member'"),
                        (14, "section 'r' option 'use_policy'"),
                        (15, "section 'r' option 'dest_port'"),
                        (17, "section 'r' option 'dest_ip'")]:
        assert f"{p}:{line}: {where}" in err, (line, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"7 errors in {p}"


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope"), "check"]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err


def test_show_config_json(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(example), "show-config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["globals"]["mmx_mask"] in (0x3F00, "0x3f00", "0x3F00")
    wan = data["interfaces"][0]
    assert wan["name"] == "wan" and wan["interval"] == 5 or wan["interval"] >= 1
    assert {"up", "down", "failure_interval", "check_quality", "flush_conntrack"} <= set(wan)
    assert len(data["members"]) == 10 and len(data["rules"]) == 3


def test_console_script(example: Path) -> None:
    exe = Path(sys.executable).parent / "mwan3"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    env = {**os.environ, "MWAN_CONFIG": str(example)}
    r = subprocess.run([str(exe), "check"], capture_output=True, text=True, env=env, timeout=60,
                       check=False)
    assert r.returncode == 0 and r.stdout.startswith("OK: "), r.stderr
    r = subprocess.run([str(exe), "--config", "/nonexistent", "check"], capture_output=True,
                       check=False,
                       text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_show_config_errors_are_printed_once_at_the_cli_edge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "mwan3"
    p.write_text(BAD)
    assert main(["--config", str(p), "show-config"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 7 and len(set(lines)) == 7, captured.err
    assert all(line.startswith(f"{p}:") for line in lines)
    assert captured.out == "" and "Traceback" not in captured.err


def test_show_config_text(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(example), "--network-config", "/nonexistent",
                 "show-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config globals 'globals'\n\toption mmx_mask '0x3f00'\n")
    assert "\nconfig interface 'wan'\n\toption device 'wan'\n\toption enabled '1'\n" in out
    assert "\tlist track_ip '1.0.0.1'\n" in out and "\toption failure_interval '" in out
    assert "option id" not in out
