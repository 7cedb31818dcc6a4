"""Issue 11 item 11: every `mwan3 ifup` of a healthy link was followed by a failed round.

The tracker resumed (and probed at once) before the apply that puts the WAN's
routes back, so its first round went out with no route: "192.0.2.1 down
(timeout)", and with `down 1` the link flapped (disconnected, hooks, flushes).
Now it resumes only after that apply, as it does when the carrier returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from mwan.lab import Lab
from mwan.lab.router import MwanRouter

from .lab_helpers import config, first_rounds, online, state, wait_for

pytestmark = pytest.mark.lab


def after_last_ifup(log: str, name: str) -> str:
    marker = f"interface {name} ifup (mwan3 ifup)"
    assert marker in log, log[-3000:]
    return log[log.rindex(marker):]


def test_ifup_of_a_healthy_link_has_no_failed_round(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    r = mwan(config(lab, up=1, down=1))
    first_rounds(r, "wan", "wanb")
    wait_for(lambda: online(r, "wan"), 5, "wan online", r)
    for _ in range(2):
        r.cli("ifdown", "wan")
        assert not online(r, "wan")
        time.sleep(0.5)
        out = r.cli("ifup", "wan").stdout
        assert "online" in out, out
        # several rounds (interval 1) after the ifup: none may fail
        time.sleep(3.5)
        tail = after_last_ifup(r.log(), "wan")
        for bad in ("interface wan disconnecting", "interface wan disconnected",
                    "interface wan ifdown"):
            assert bad not in tail, tail
        st = state(r)["wan"]
        assert st["online"] and st["status"] == "online", st
        assert all(t["status"] == "up" for t in st["targets"]), st
