"""The demo command end to end: start (detached supervisor), status, mwan3, cut/restore,
loss, the host-port forwarder to the web UI, and stop leaving nothing behind."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mwan.lab.netns import netns_names

pytestmark = pytest.mark.lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo(state_dir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mwan.lab.demo", "--state-dir", str(state_dir),
                           *args], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def iface_state(state_dir: Path, name: str) -> str:
    out = demo(state_dir, "mwan3", "interfaces", timeout=30).stdout
    for line in out.splitlines():
        if line.strip().startswith(f"interface {name} is "):
            return line.split(" is ", 1)[1].split()[0]
    return f"missing in {out!r}"


def wait_state(state_dir: Path, name: str, want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := iface_state(state_dir, name)) != want:
        assert time.monotonic() < deadline, f"{name} is still {got}, not {want}"
        time.sleep(0.5)


def http_get(port: int, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        return s.recv(100)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_demo_start_faults_stop(lab_available: tuple[bool, str], tmp_path: Path) -> None:
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    sd = tmp_path / "demo"
    port = free_port()
    state: dict[str, object] = {}
    try:
        r = demo(sd, "start", "--port", str(port), "--password", "s3cret-demo")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"http://127.0.0.1:{port}/" in r.stdout and "s3cret-demo" in r.stdout
        state = json.loads((sd / "state.json").read_text())
        assert alive(int(str(state["supervisor_pid"])))
        config = Path(str(state["config"])).read_text()
        assert "option web_enabled '1'" in config and "list web_listen '192.168.1.1'" in config

        again = demo(sd, "start", "--port", str(free_port()))
        assert again.returncode != 0 and "already runs" in again.stderr

        st = demo(sd, "status")
        assert st.returncode == 0, st.stdout + st.stderr
        assert str(state["lab"]) in st.stdout and "interface wan is online" in st.stdout

        for name in ("wan", "wanb", "wanc"):
            assert iface_state(sd, name) == "online"

        # the forwarder reaches the router's web UI (when the daemon serves one)
        if importlib.util.find_spec("mwan.web.server") is not None:
            deadline = time.monotonic() + 5
            while not (reply := http_get(port)).startswith(b"HTTP/"):
                assert time.monotonic() < deadline, reply
                time.sleep(0.2)

        r = demo(sd, "cut", "wanb")
        assert r.returncode == 0, r.stderr
        wait_state(sd, "wanb", "offline", 10)
        assert iface_state(sd, "wan") == "online"
        r = demo(sd, "restore", "wanb")
        assert r.returncode == 0, r.stderr
        wait_state(sd, "wanb", "online", 10)

        for pct in ("30", "0"):
            r = demo(sd, "loss", "wanb", pct)
            assert r.returncode == 0, r.stderr
        assert demo(sd, "loss", "wanx", "5").returncode != 0
    finally:
        stop = demo(sd, "stop", timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not sd.exists()
    if state:
        assert not [n for n in netns_names() if n.startswith(str(state["lab"]))]
        assert not alive(int(str(state["supervisor_pid"])))
        assert not os.path.exists(f"/run/mwan-lab/{state['lab']}.pid")
    assert demo(sd, "status").returncode != 0
