"""``mwan3 show-config`` printed what is not UCI one can use again (issue 12, items 3 and 6).

It wrote ``option id`` (an interface's position) and ``option src_device`` (a
rule's resolved device) as if they were options, so ``mwan3 check`` of its
output warned "unknown option", and it had its own writer that put a value
with a quote inside single quotes unescaped.  Now it prints exactly the option
tables' options through config/edit's one UCI writer: its output is a config
that checks clean and prints the same again.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from mwan.cli.main import main
from mwan.config.validate import load_config

EXAMPLE = resources.files("mwan").joinpath("data/mwan3.example").read_text()
EXTRA = """
config rule 'from_lan'
	option src_iface 'wan'
	option use_policy 'balanced'
"""


def _show(conf: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--config", str(conf), "--network-config", "/nonexistent", "show-config"]) == 0
    return capsys.readouterr().out


def test_show_config_output_checks_clean_and_is_a_fixpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mwan3"
    src.write_text(EXAMPLE.replace(
        "option mmx_mask '0x3F00'", "option mmx_mask '0x3F00'\n\toption user_script "
        "'/etc/it'\"'\"'s.sh'") + EXTRA)
    first = _show(src, capsys)
    assert "option id " not in first and "option src_device " not in first
    again = tmp_path / "shown"
    again.write_text(first)
    cfg = load_config(str(again), "/nonexistent")
    assert cfg.warnings == ()
    assert cfg.globals.user_script == "/etc/it's.sh"
    assert cfg.rules[-1].src_device == "wan"
    original = load_config(str(src), "/nonexistent")
    for kind in ("interfaces", "members", "policies", "rules"):
        assert [replace(x, line=0) for x in getattr(original, kind)] == \
            [replace(x, line=0) for x in getattr(cfg, kind)], kind
    assert _show(again, capsys) == first
