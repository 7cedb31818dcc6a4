"""Quality windows, degraded, quality-aware choice and passive suspicion with real packets.

Loss comes from the ISP's nft (lab.set_loss); latency from the lab's DNS responder, which
waits a chosen time before each answer (the lab kernel has no netem).  Timings here are
loose on purpose: the benchmarks measure them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwan.daemon.control import call
from mwan.lab import Lab, dnsd
from mwan.lab.router import MwanRouter

pytestmark = pytest.mark.lab

FAST = {"interval": "0.2", "failure_interval": "0.2", "recovery_interval": "200ms",
        "timeout": "0.5", "up": 2, "down": 3}
SAME_TIER = """
config member 'wan_m1'
	option interface 'wan'
config member 'wanb_m1'
	option interface 'wanb'
config policy 'both'
	list use_member 'wan_m1'
	list use_member 'wanb_m1'
{extra}
config rule 'all'
	option dest_ip '0.0.0.0/0'
	option use_policy 'both'
"""
SCRIPT = """#!/bin/sh
echo "$ACTION $INTERFACE" >> {out}
"""


def section(lab: Lab, k: int, name: str, **opts: Any) -> str:
    lines = [f"config interface '{name}'", "\toption enabled '1'",
             f"\toption device '{lab.wan_device(k)}'"]
    for key, value in {**FAST, **opts}.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"\t{'list' if isinstance(value, list) else 'option'} {key} '{v}'")
    return "\n".join(lines) + "\n\n"


def state(r: MwanRouter) -> dict[str, Any]:
    return call(r.run_dir, "state")["interfaces"]  # type: ignore[no-any-return]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, r: MwanRouter) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s\n{state(r)}\n{r.log()[-3000:]}")
        time.sleep(0.1)
    return time.monotonic() - t0


def wans(lab: Lab, n: int = 20) -> dict[int, int]:
    return lab.connect_many(lab.client_ns(1), lab.server_addr(4), 80, count=n, timeout=1).wans


def test_loss_degrades_the_interface_online_and_avoid_degraded_moves_new_connections(
        lab: Lab, mwan: Callable[[str], MwanRouter], tmp_path: Path) -> None:
    out = tmp_path / "events"
    script = tmp_path / "mwan3.user"
    script.write_text(SCRIPT.format(out=out))
    os.chmod(script, 0o755)
    target = lab.track_targets(4)[0]
    # count 3, down 5: a round fails only when all 3 probes are lost (4 % at 35 % loss), so
    # 5 in a row (offline) practically never happen: the interface stays online, degraded
    q = {"track_ip": [target], "count": 3, "down": 5, "quality_window": 3, "warn_loss": 10}
    text = (f"config globals 'globals'\n\toption user_script '{script}'\n\n"
            + section(lab, 1, "wan", **q) + section(lab, 2, "wanb", **q)
            + SAME_TIER.format(extra="\toption avoid_degraded '1'\n"))
    r = mwan(text)
    wait_for(lambda: all(i["online"] for i in state(r).values()), 10, "both online", r)
    assert set(wans(lab)) == {1, 2}  # mwan3's weights: both used
    lab.set_loss(1, 35)
    wait_for(lambda: state(r)["wan"]["degraded"], 30, "wan degraded", r)
    st = state(r)["wan"]
    assert st["online"] and st["quality"]["level"] == "degraded"
    assert st["quality"]["loss_pct"] >= 10 and "loss" in st["quality"]["reason"]
    status = r.cli("status").stdout
    assert " interface wan is online (degraded: loss " in status
    assert "wan skipped: degraded (avoid_degraded)" in r.cli("policies").stdout
    wait_for(lambda: set(wans(lab, 10)) == {2}, 10, "new connections on wanb only", r)
    explained = r.cli("explain", "--src", lab.client_addr(1), "--dst", lab.server_addr(4),
                      "--dport", "80").stdout
    assert "policy both: wan skipped: degraded" in explained and "=> wanb" in explained
    lab.clear_loss(1)
    wait_for(lambda: not state(r)["wan"]["degraded"], 30, "wan healthy again", r)
    lines = out.read_text().splitlines()
    assert "degraded wan" in lines and "healthy wan" in lines
    wait_for(lambda: set(wans(lab)) == {1, 2}, 10, "both used again", r)


def test_balance_latency_takes_the_fastest_and_does_not_flap_within_the_margin(
        lab: Lab, mwan: Callable[[str], MwanRouter], tmp_path: Path) -> None:
    slow, fast = tmp_path / "delay_a", tmp_path / "delay_b"
    slow.write_text("60")
    fast.write_text("5")
    dnsd.start(lab, "192.0.2.53", delay_file=slow)
    dnsd.start(lab, "192.0.2.54", delay_file=fast)
    common = {"track_method": "dns", "quality_window": 2, "timeout": 1}
    r = mwan(section(lab, 1, "wan", track_ip=["192.0.2.53"], **common)
             + section(lab, 2, "wanb", track_ip=["192.0.2.54"], **common)
             + SAME_TIER.format(extra="\toption balance 'latency'\n"))
    wait_for(lambda: all(i["online"] for i in state(r).values()), 10, "both online", r)
    wait_for(lambda: set(wans(lab, 10)) == {2}, 15, "all new connections on wanb", r)
    assert "wanb chosen" in r.cli("policies").stdout
    # wan becomes a little faster than wanb: within the 20 ms margin, no switch
    slow.write_text("1")
    fast.write_text("10")
    time.sleep(5)  # more than two windows
    assert set(wans(lab, 10)) == {2}
    assert "wanb kept" in r.cli("policies").stdout
    # wanb slows down past both margins: switch
    fast.write_text("150")
    wait_for(lambda: set(wans(lab, 10)) == {1}, 15, "all new connections on wan", r)


def test_passive_suspicion_probes_at_once_under_lan_traffic(
        lab: Lab, mwan: Callable[[str], MwanRouter]) -> None:
    slow = {"interval": 30, "failure_interval": 30, "recovery_interval": 1, "timeout": 1,
            "up": 2, "down": 2, "track_ip": [lab.track_targets(4)[0]]}
    r = mwan(section(lab, 1, "wan", track_passive=1, **slow)
             + section(lab, 2, "wanb", **slow) + SAME_TIER.replace(
                 "config member 'wanb_m1'\n\toption interface 'wanb'\n",
                 "config member 'wanb_m1'\n\toption interface 'wanb'\n\toption metric '2'\n"
             ).format(extra=""))
    wait_for(lambda: all(i["online"] and i["last_test"] for i in state(r).values()), 10,
             "both online", r)
    traffic = lab.popen(lab.client_ns(1), lab.python(
        "bench.failover_probe", lab.server_addr(4), "--every", "0.05", "--timeout", "1"),
        stdout=open(os.devnull, "wb"))  # noqa: SIM115 - the lab closes the process
    try:
        time.sleep(1)
        lab.outage(1)
        # probe-only: the next round is up to 30 s away, then 30 s between rounds
        took = wait_for(lambda: not state(r)["wan"]["online"], 20, "wan offline", r)
        st = state(r)["wan"]
        assert st["suspicions"] >= 1 and took < 20
        assert "no reply within" in r.log()
    finally:
        traffic.kill()
        lab.end_outage(1)


def test_latency_and_jitter_levels_from_the_window(
        lab: Lab, mwan: Callable[[str], MwanRouter], tmp_path: Path) -> None:
    delay = tmp_path / "delay"
    delay.write_text("5")
    dnsd.start(lab, "192.0.2.53", delay_file=delay)
    q = {"track_method": "dns", "track_ip": ["192.0.2.53"], "quality_window": 2,
         "timeout": 1, "warn_latency": 60, "warn_latency_recovery": 30, "warn_jitter": 40,
         "warn_jitter_recovery": 20, "down_latency": 250, "down_latency_recovery": 150,
         "down_loss": 50, "down_loss_recovery": 20, "warn_loss": 20, "warn_loss_recovery": 10}
    r = mwan(section(lab, 1, "wan", **q)
             + section(lab, 2, "wanb", track_ip=[lab.track_targets(4)[0]])
             + SAME_TIER.format(extra=""))
    wait_for(lambda: all(i["online"] for i in state(r).values()), 10, "both online", r)

    def level() -> str:
        return str(state(r)["wan"]["quality"]["level"])

    def reason() -> str:
        return str(state(r)["wan"]["quality"]["reason"])

    delay.write_text("90")  # above warn_latency, below down_latency
    # (while the window mixes old and new answers its jitter may be the first reason)
    wait_for(lambda: level() == "degraded" and "latency" in reason(), 15,
             "degraded on latency", r)
    assert state(r)["wan"]["online"]
    delay.write_text("5")
    wait_for(lambda: level() == "ok", 15, "healthy again", r)
    delay.write_text("2,90")  # an average of 46 ms (< 60), jitter 44 ms (>= 40)
    wait_for(lambda: level() == "degraded" and "jitter" in reason(), 15,
             "degraded on jitter", r)
    delay.write_text("400")  # answers, but past down_latency: rounds fail
    wait_for(lambda: not state(r)["wan"]["online"], 20, "offline at the down level", r)
    assert state(r)["wan"]["quality"]["level"] == "down" and state(r)["wanb"]["online"]
    delay.write_text("5")
    wait_for(lambda: state(r)["wan"]["online"] and level() == "ok", 20, "back online", r)
