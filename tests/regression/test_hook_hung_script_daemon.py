"""Issue 11 item 5 in the lab: a hung user_script stalled every later hook and flush.

wan's script hangs (with a child holding its stdout); wanb then goes down: its
conntrack flush and its script must run at once, not after wan's 30 s limit,
and `mwan3 stop` kills the hung script's whole process group.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter

from .lab_helpers import config, first_rounds, online, wait_for

pytestmark = pytest.mark.lab

SCRIPT = """#!/bin/sh
echo "$ACTION $INTERFACE" >> {out}
if [ "$INTERFACE" = wan ] && [ "$ACTION" = ifup ]; then
    sleep 300 &
    echo $! > {pids}
    echo $$ >> {pids}
    sleep 300
fi
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hung_script_stalls_no_other_hook(lab: Lab, mwan: Callable[[str], MwanRouter],
                                          tmp_path: Path) -> None:
    out, pids = tmp_path / "events", tmp_path / "pids"
    script = tmp_path / "mwan3.user"
    script.write_text(SCRIPT.format(out=out, pids=pids))
    os.chmod(script, 0o755)
    text = config(lab, up=2, down=2, flush_conntrack=["disconnected"]).replace(
        "config member", f"config globals 'globals'\n\toption user_script '{script}'\n\n"
        "config member", 1)
    r = mwan(text)
    first_rounds(r, "wan", "wanb")
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10,
             "wan's script hangs", r)
    t0 = time.monotonic()
    lab.outage(2)
    wait_for(lambda: not online(r, "wanb"), 8, "wanb offline", r)
    wait_for(lambda: "interface wanb disconnected: flushed" in r.log(), 5, "wanb's flush", r)
    wait_for(lambda: "disconnected wanb" in out.read_text(), 5, "wanb's script", r)
    assert time.monotonic() - t0 < 20  # well before wan's script reaches its 30 s limit
    hung = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in hung)
    r.stop()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in hung) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in hung), "the hung script's group survived mwan3 stop"
