"""Issue 11 item 3 in the lab: the daemon at its fd limit must not take every WAN offline.

Before, every probe failed with EMFILE and counted as "target down": all WANs
went offline within seconds and the log grew 91 MB in 40 s.  Here the running
daemon's RLIMIT_NOFILE is lowered (prlimit) so that it cannot open any descriptor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest

from mwan.daemon.control import PID_NAME
from mwan.lab import Lab
from mwan.lab.router import MwanRouter

from .lab_helpers import config, first_rounds, online, state, wait_for

pytestmark = pytest.mark.lab


def set_nofile(pid: int, soft: int) -> None:
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={soft}:"], check=True)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) not installed")
def test_out_of_fds_keeps_the_wans_online(lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab))  # interval 1, down 3: an outage would be declared in 3.5 s
    first_rounds(r, "wan", "wanb")
    wait_for(lambda: online(r, "wan") and online(r, "wanb"), 5, "both online", r)
    with open(os.path.join(r.run_dir, PID_NAME)) as fh:
        pid = int(fh.read())
    log_before = len(r.log())
    set_nofile(pid, 3)  # no new descriptor at all: the lowest free one is above 2
    try:
        time.sleep(8)
    finally:
        set_nofile(pid, 4096)
    tail = r.log()[log_before:]
    assert "too many open files" in tail, tail[-3000:]
    for bad in ("disconnecting", "disconnected"):
        assert f"wan {bad}" not in tail and f"wanb {bad}" not in tail, tail[-3000:]
    assert len(tail) < 20_000, f"{len(tail)} bytes of log in 8 s:\n{tail[-3000:]}"
    st = state(r)
    assert st["wan"]["online"] and st["wanb"]["online"], st
    wait_for(lambda: "wan: probe rounds count again" in r.log()[log_before:], 5,
             "rounds count again", r)
    assert all(t["status"] == "up" for t in state(r)["wan"]["targets"])
