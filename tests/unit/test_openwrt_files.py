"""Issue 16 item 3: the OpenWrt files parse and pass the right netifd events on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "openwrt" / "files"


@pytest.mark.parametrize("name", ["mwan.hotplug", "mwan.init", "mwan3.sh"])
def test_shell_files_parse(name: str) -> None:
    subprocess.run(["sh", "-n", str(FILES / name)], check=True)


def _hotplug(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Source the script as hotplug-call does, with a stub mwan3 that logs its arguments."""
    log = tmp_path / "calls"
    stub = tmp_path / "mwan3"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\necho "interface $2 is online"\n')
    stub.chmod(0o755)
    subprocess.run(["sh", "-c", '( . "$1" )', "hotplug-call", str(FILES / "mwan.hotplug")],
                   check=True, env={"PATH": f"{tmp_path}:{os.environ['PATH']}", **env})
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(("env", "calls"), [
    ({"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1"}, ["ifup wan"]),
    ({"ACTION": "ifdown", "INTERFACE": "wanb", "DEVICE": "pppoe-wanb"}, ["ifdown wanb"]),
    ({"ACTION": "ifdown", "INTERFACE": "wanb"}, ["ifdown wanb"]),  # the device may be gone
    ({"ACTION": "ifup", "INTERFACE": "wan"}, []),  # no L3 device yet
    ({"ACTION": "ifupdate", "INTERFACE": "wan", "DEVICE": "eth1"}, []),
    ({"ACTION": "connected", "INTERFACE": "wan", "DEVICE": "eth1"}, []),
    ({"ACTION": "ifup", "DEVICE": "eth1"}, []),
])
def test_hotplug_passes_ifup_and_ifdown(tmp_path: Path, env: dict[str, str],
                                        calls: list[str]) -> None:
    assert _hotplug(tmp_path, env) == calls


def test_init_script_reload_is_mwan3_restart() -> None:
    text = (FILES / "mwan.init").read_text()
    assert "USE_PROCD=1" in text
    reload = text[text.index("reload_service()"):]
    assert '"$PROG" restart' in reload.split("}")[0]
    assert 'procd_set_param command "$PROG" daemon' in text
