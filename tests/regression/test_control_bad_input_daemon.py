"""Regression (issue 10, item 4), end to end: junk on a running daemon's control socket.

Each bad request gets an error answer, the daemon logs no traceback, silent
clients do not stop others, and routing goes on (the CLI still reports both
WANs online afterwards).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from mwan.lab import Lab
from mwan.lab.router import TWO_WAN_POLICIES, MwanRouter, lab_interfaces

pytestmark = pytest.mark.lab


def send(path: str, data: bytes) -> dict[str, Any] | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            buf += got
        return json.loads(buf) if buf else None
    finally:
        s.close()


JUNK = [
    (b"\x00\xff\xfe garbage\n", "not JSON"),
    (b"x" * (8 << 20) + b"\n", "request too long"),
    (b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
    (b'{"cmd": "state", "args": [1]}\n', "'args' must be an object"),
    (b'{"cmd": "ifup", "args": {"interface": ["wan"]}}\n', "must be a string, not a list"),
    (b'{"cmd": "use", "args": {"interface": {"x": 1}}}\n', "must be a string, not an object"),
    (b'{"cmd": "ifdown", "args": {}}\n', "missing argument 'interface'"),
    (b'{"cmd": "explain", "args": {"src": 5, "dst": "203.0.113.1"}}\n',
     "must be a string, not a number"),
    (b'{"cmd": "report", "args": {"rules": "no"}}\n', "true or false"),
    (b'{"cmd": "reboot"}\n', "unknown command"),
]


def test_daemon_answers_junk_with_errors_and_keeps_routing(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    text = lab_interfaces(lab, ipv6=False, track_ip=lab.track_targets(4)[:1], interval=1,
                          timeout=1, up=1, down=2) + TWO_WAN_POLICIES
    r = mwan(text)
    path = os.path.join(r.run_dir, "mwan3.sock")
    silent = []
    for _ in range(100):  # clients that connect and never speak
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        silent.append(s)
    try:
        for data, fragment in JUNK:
            answer = send(path, data)
            assert answer is not None, f"no answer to {data[:40]!r}"
            assert answer["ok"] is False and fragment in answer["error"], (data[:40], answer)
        ok = send(path, b'{"cmd": "ping"}\n')
        assert ok is not None and ok["ok"] is True
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 15
    while True:
        res = r.cli("interfaces", "--json", check=False)
        assert res.returncode == 0, res.stderr
        state = json.loads(res.stdout)
        online = {name: i.get("online") for name, i in state["interfaces"].items()}
        if all(online.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert online == {"wan": True, "wanb": True}
    assert "Traceback" not in r.log()
